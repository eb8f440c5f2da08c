"""The training-mode passes (every layer in training behaviour, or one family only, every variant from
one compiled pass; see Prober.training_passes_weighted) and the evaluate-like inference loss with
class weights or on a subset."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

from losscheck._tf import keras, tf
from losscheck.loading.memory import call_state_variables
from losscheck.probes.batching import structure
from losscheck.probes.compiled import build_state, compile_step, is_tensorflow
from losscheck.probes.layers import BN_TYPES, all_layers, forced_training
from losscheck.probes.variant_calls import VariantCalls
from losscheck.reference import EpochMean

if TYPE_CHECKING:
    from losscheck.probes.prober import Prober

ops = keras.ops


def _batch_mean() -> Callable[[Any], Any]:
    """The mean of a batch's loss as Keras's tracker records it."""
    if is_tensorflow():
        def batch_mean(t):
            return tf.reduce_mean(tf.cast(t, tf.float64))
    else:  # JAX computes in float32 unless x64 is enabled
        def batch_mean(t):
            return ops.mean(ops.cast(t, "float32"))
    return batch_mean


def _shift_seeds(seeds: list[tuple[int, Any]], draw: int) -> None:
    """Other random draws: shift every layer's seed (restored with the other variables)."""
    for _, var in seeds:
        state = np.array(var)
        state.flat[0] = state.flat[0] + 7919 * draw
        var.assign(state)


class _TorchRandom:
    """torch's global generators (CPU, and CUDA once initialized), from which a torch Dropout without a
    seed draws its masks: saved before the first variant of a batch and put back before each other one,
    so every variant draws the masks the first draws; after the batch they stand as after one pass."""

    def __init__(self) -> None:
        import torch

        self.torch = torch
        self.start: Any = None
        self.after_first: Any = None

    def _state(self) -> Any:
        t = self.torch
        return t.get_rng_state(), (t.cuda.get_rng_state_all() if t.cuda.is_initialized() else None)

    def _set(self, state: Any) -> None:
        cpu, cuda = state
        self.torch.set_rng_state(cpu)
        if cuda is not None:
            self.torch.cuda.set_rng_state_all(cuda)

    def before(self, k: int) -> None:
        """Before variant `k` of a batch."""
        if k == 0:
            self.start = self._state()
            return
        if k == 1:
            self.after_first = self._state()
        self._set(self.start)

    def done(self, count: int) -> None:
        """After the batch's `count` variants."""
        if count > 1:
            self._set(self.after_first)


def _variants_step(model, calls: VariantCalls, variants: list, forced: dict, held_off: list[Any],
                   trainable: list[Any], non_trainable: list[Any], carried: list[tuple[int, Any]],
                   own: list[list[Any]], seeds: list[tuple[int, Any]]) -> Callable:
    """The step that runs every variant on one batch, each in its own StatelessScope (see
    Prober.training_passes_weighted): the stacked batch losses, unweighted then (with `cw`) class-weighted."""
    tensorflow = is_tensorflow()
    batch_mean = _batch_mean()
    torch_random = _TorchRandom() if keras.backend.backend() == "torch" else None

    def step(x, y, sw, cw):
        calls.reset()
        if tensorflow:
            t_values = [tf.identity(v.value) for v in trainable]
            n_values = [tf.identity(v.value) for v in non_trainable]
        else:  # inside compile_step's own scope: the traced values
            t_values = [v.value for v in trainable]
            n_values = [v.value for v in non_trainable]
        mapping = list(zip(trainable, t_values, strict=True)) + list(zip(non_trainable, n_values, strict=True))
        losses: list[Any] = []
        advanced: dict[int, Any] = {}
        for k, f in enumerate(variants):
            outer = f is None
            if torch_random is not None:
                torch_random.before(k)
            calls.force(forced[f], () if f in (None, "inference") else held_off)
            mine = [(var, held.value) for (_, var), held in zip(carried, own[k], strict=True)]
            # the variant's own carried values override the shared ones (later entries win)
            with keras.StatelessScope(state_mapping=mapping + mine, collect_losses=True) as scope:
                pred = model(x, training=outer)
                loss = model._compute_loss(x=x, y=y, y_pred=pred, sample_weight=sw, training=outer)
                # a reduction="none" loss is a vector: Keras's tracker records its mean
                losses.append(batch_mean(loss))
                if cw is not None:
                    loss = model._compute_loss(x=x, y=y, y_pred=pred, sample_weight=cw, training=outer)
                    losses.append(batch_mean(loss))
            for i, var in seeds:
                new = scope.get_current_value(var)
                if new is not None and new is not n_values[i]:
                    advanced.setdefault(i, new)
            for held, (var, value) in zip(own[k], mine, strict=True):
                new = scope.get_current_value(var)
                if new is not None and new is not value:
                    held.assign(new)
        calls.force([])
        if torch_random is not None:
            torch_random.done(len(variants))
        for i, var in seeds:  # a separate pass advances each seed once per batch
            if i in advanced:
                var.assign(advanced[i])
        return ops.stack(losses)

    return step


def _run_variants(prober: Prober, step, variants: list, class_weight, limit: int | None
                  ) -> tuple[list[EpochMean], list[tuple[int, dict]]]:
    """The compiled variants step over the batches: one EpochMean per (variant, weighting) and, per
    batch, (n_b, variant -> unweighted batch loss)."""
    model = prober.model
    weighted = bool(class_weight)
    width = 2 if weighted else 1
    means = [EpochMean() for _ in range(width * len(variants))]
    batches: list[tuple[int, dict]] = []
    for start, stop, xs, ys, sw in prober.batches(limit):
        cw = prober.class_weighted(ys, sw, class_weight) if weighted else None
        if not batches:
            build_state(model, structure(xs), structure(ys), sw)
        values = np.asarray(step(structure(xs), structure(ys), sw, cw))
        for m, v in zip(means, values, strict=True):
            m.add(float(v), stop - start)
        batches.append((stop - start, {f: float(values[width * i]) for i, f in enumerate(variants)}))
    return means, batches


def variant_losses(prober: Prober, families: list[str | None], class_weight, limit: int | None, draw: int
                   ) -> tuple[dict[str | None, float], dict[str | None, float]]:
    """See Prober.training_passes_weighted."""
    model = prober.model
    variants = list(dict.fromkeys(families))
    forced = {f: [] if f in (None, "inference") else list(getattr(prober.families, f)) for f in variants}
    held_off = prober.families.known()
    weighted = bool(class_weight)
    keras.utils.set_random_seed(prober.seed + draw)
    seed_ids = {id(sg.state) for layer in [model, *all_layers(model)]
                for sg in getattr(layer, "_seed_generators", None) or []}
    bn_ids = {id(v) for layer in all_layers(model) if isinstance(layer, BN_TYPES)
              for v in getattr(layer, "non_trainable_variables")}  # noqa: B009 - typed as object
    non_trainable = call_state_variables(model)
    carried = [(i, v) for i, v in enumerate(non_trainable) if id(v) not in seed_ids | bn_ids]
    with VariantCalls(model, [v for _, v in carried]) as calls, forced_training(model, [], True):
        trainable = list(model.trainable_variables)
        seeds = [(i, v) for i, v in enumerate(non_trainable) if id(v) in seed_ids]
        # each variant's own copy of the carried state, from the saved values
        own = [[keras.Variable(np.array(v), dtype=v.dtype, trainable=False) for _, v in carried]
               for _ in variants]
        if draw:
            _shift_seeds(seeds, draw)
        step = _variants_step(model, calls, variants, forced, held_off, trainable, non_trainable, carried, own, seeds)
        step = compile_step(step, [*trainable, *non_trainable, *(c for copies in own for c in copies)])
        means, batches = _run_variants(prober, step, variants, class_weight, limit)
    prober.last_batches = batches  # (n_b, variant -> unweighted batch loss) of this pass, in order
    width = 2 if weighted else 1
    plain = {f: means[width * i].value for i, f in enumerate(variants)}
    cw_means = {f: means[width * i + 1].value for i, f in enumerate(variants)} if weighted else {}
    return plain, cw_means


def inference_loss(prober: Prober, class_weight, limit: int | None) -> float:
    """See Prober.inference_loss (which puts the state a call updates back afterwards)."""
    model = prober.model

    def step(x, y, sw):
        pred = model(x, training=False)
        return model._compute_loss(x=x, y=y, y_pred=pred, sample_weight=sw, training=False)

    mean = EpochMean()
    compiled = None
    for start, stop, xs, ys, sw in prober.batches(limit, class_weight):
        if compiled is None:
            build_state(model, structure(xs), structure(ys), sw)
            compiled = compile_step(step, [*model.trainable_variables, *call_state_variables(model)])
        mean.add(float(np.mean(compiled(structure(xs), structure(ys), sw))), stop - start)
    return mean.value
