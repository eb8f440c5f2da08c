"""The training-mode passes (every layer in training behaviour, or one family only, every variant from
one compiled pass; see Prober.training_passes_weighted) and the evaluate-like inference loss with
class weights or on a subset."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
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
                   own: list[list[Any]], seeds: list[tuple[int, Any]], reset: bool = True) -> Callable:
    """The step that runs every variant on one batch, each in its own StatelessScope (see
    Prober.training_passes_weighted): the stacked batch losses, unweighted then (with `cw`) class-weighted."""
    tensorflow = is_tensorflow()
    batch_mean = _batch_mean()
    torch_random = _TorchRandom() if keras.backend.backend() == "torch" else None

    def step(x, y, sw, cw):
        if reset:
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


def _run_variants(prober: Prober, step, setup: VariantSetup, class_weight, limit: int | None) -> None:
    """The compiled variants step over the batches, added up in `setup`."""
    model = prober.model
    first = True
    for start, stop, xs, ys, sw in prober.batches(limit):
        cw = prober.class_weighted(ys, sw, class_weight) if class_weight else None
        if first:
            build_state(model, structure(xs), structure(ys), sw)
            first = False
        setup.add(np.asarray(step(structure(xs), structure(ys), sw, cw)), stop - start)


def _seed_ids(model) -> set[int]:
    return {id(sg.state) for layer in [model, *all_layers(model)]
            for sg in getattr(layer, "_seed_generators", None) or []}


def carried_state(model) -> list[tuple[int, Any]]:
    """The state a call updates that a training-mode variant carries from batch to batch on its own
    (stateful RNN states, a custom layer's variables; not seeds or BatchNormalization statistics), as
    (index in call_state_variables, variable)."""
    bn_ids = {id(v) for layer in all_layers(model) if isinstance(layer, BN_TYPES)
              for v in getattr(layer, "non_trainable_variables")}  # noqa: B009 - typed as object
    skip = _seed_ids(model) | bn_ids
    return [(i, v) for i, v in enumerate(call_state_variables(model)) if id(v) not in skip]


class VariantSetup:
    """What one compiled training-mode pass runs (see Prober.training_passes_weighted), set up by
    `variant_setup`: the variants in order, the layer-call wrapper, the uncompiled step and the
    variables it reads; `totals` adds up its batch losses and `finish` turns them into the figures."""

    def __init__(self, prober: Prober, variants: list, calls: VariantCalls, step: Callable, variables: list,
                 class_weight) -> None:
        self.prober, self.variants, self.calls, self.step, self.variables = prober, variants, calls, step, variables
        self.weighted = bool(class_weight)
        width = 2 if self.weighted else 1
        self.means = [EpochMean() for _ in range(width * len(variants))]
        self.batches: list[tuple[int, dict]] = []
        self.compiled: Any = None  # the compiled step a joint pass runs (probes/joint.py), once built
        self.build: Any = None  # what builds that step (probes/joint.py joint_step), set by the joint pass

    def add(self, values: np.ndarray, n: int) -> None:
        """One batch's stacked losses (the step's output) of n samples."""
        width = 2 if self.weighted else 1
        for m, v in zip(self.means, values, strict=True):
            m.add(float(v), n)
        self.batches.append((n, {f: float(values[width * i]) for i, f in enumerate(self.variants)}))

    def finish(self) -> tuple[dict[str | None, float], dict[str | None, float]]:
        """(unweighted, class-weighted) epoch means by variant; sets prober.last_batches."""
        self.prober.last_batches = self.batches  # (n_b, variant -> unweighted batch loss) of this pass, in order
        width = 2 if self.weighted else 1
        plain = {f: self.means[width * i].value for i, f in enumerate(self.variants)}
        cw_means = ({f: self.means[width * i + 1].value for i, f in enumerate(self.variants)}
                    if self.weighted else {})
        return plain, cw_means


@contextlib.contextmanager
def variant_setup(prober: Prober, families: list[str | None], class_weight, draw: int,
                  reset: bool = True, calls: VariantCalls | None = None) -> Iterator[VariantSetup]:
    """The training-mode pass of `families` set up (seeds, layer-call wrappers, each variant's copy of
    the carried state), for the block; everything is put back on exit. `reset`: whether the step clears
    the layer-call memo itself (False: the caller clears it, for a step that runs more before it).
    `calls`: the layer-call wrapper of an earlier setup of the same pass, installed again (a step compiled
    then may trace again only with its own wrapper in place)."""
    model = prober.model
    variants = list(dict.fromkeys(families))
    forced = {f: [] if f in (None, "inference") else list(getattr(prober.families, f)) for f in variants}
    held_off = prober.families.known()
    keras.utils.set_random_seed(prober.seed + draw)
    seed_ids = _seed_ids(model)
    non_trainable = call_state_variables(model)
    carried = carried_state(model)
    with calls or VariantCalls(model, [v for _, v in carried]) as calls, forced_training(model, [], True):
        trainable = list(model.trainable_variables)
        seeds = [(i, v) for i, v in enumerate(non_trainable) if id(v) in seed_ids]
        # each variant's own copy of the carried state, from the saved values
        own = [[keras.Variable(np.array(v), dtype=v.dtype, trainable=False) for _, v in carried]
               for _ in variants]
        if draw:
            _shift_seeds(seeds, draw)
        step = _variants_step(model, calls, variants, forced, held_off, trainable, non_trainable, carried, own, seeds,
                              reset)
        variables = [*trainable, *non_trainable, *(c for copies in own for c in copies)]
        yield VariantSetup(prober, variants, calls, step, variables, class_weight)


def variant_losses(prober: Prober, families: list[str | None], class_weight, limit: int | None, draw: int
                   ) -> tuple[dict[str | None, float], dict[str | None, float]]:
    """See Prober.training_passes_weighted."""
    with variant_setup(prober, families, class_weight, draw) as setup:
        step = compile_step(setup.step, setup.variables)
        _run_variants(prober, step, setup, class_weight, limit)
    return setup.finish()


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
