"""The inference pass: evaluate (Keras's own compute_loss on the inference outputs), regularization and
the numpy reference `manual`, all from one compiled pass over the data (probes/steps.py), with the
variants the semantic findings explain and the observers other measurements ride on."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from losscheck.probes.batching import floatx, structure
from losscheck.probes.compiled import is_tensorflow
from losscheck.probes.steps import StepOutputs, inference_step, raw_logits_step
from losscheck.reference import EpochMean, output_batch_loss
from losscheck.reference.variants import SemanticStats

if TYPE_CHECKING:
    from losscheck.probes.prober import Prober


@dataclass
class BatchResult:
    """One batch of the inference pass, as numpy."""

    start: int
    stop: int
    x: list[np.ndarray]
    y: list[np.ndarray]
    sample_weight: np.ndarray | None
    outputs: list[np.ndarray]
    logits: list[np.ndarray | None]  # pre-activation logits Keras's backend may use (see reference.uses_logits)
    masks: list[np.ndarray | None]  # Keras mask of each output merged with the loss's own mask
    values: list[np.ndarray | None]  # per-element values of custom losses (their own call())
    total: float  # Keras's total loss for this batch (what evaluate averages)
    regularization: float
    output_losses: dict[str, float]  # reference L_o,b (unweighted)
    data_loss: float  # sum_o lw_o L_o,b from the reference
    # pre-activation of a float16/bfloat16 softmax/sigmoid output, which Keras cannot use (it casts
    # the output to float32 first), and that activation's op type ("Softmax"/"Sigmoid")
    raw_logits: list[np.ndarray | None] = field(default_factory=list)
    activations: list[str | None] = field(default_factory=list)

    @property
    def n(self) -> int:
        return self.stop - self.start


@dataclass
class InferenceResult:
    evaluate: float
    regularization: float
    manual: float | None
    output_loss: dict[str, float]  # exact dataset mean per output (n_b-weighted)
    # Keras's compiled per-output log: on TensorFlow the unweighted mean of the batch losses (the traced
    # batch dimension is unknown, so its Mean gets no weight); on JAX/torch (static shapes) the exact mean
    output_loss_keras_log: dict[str, float]
    batch_totals: list[tuple[int, float]]  # (n_b, total_b)
    batch_output_losses: list[dict[str, float]]  # per batch: output -> reference L_o,b
    manual_unsupported: list[str]
    n_batches: int
    # natural-numpy variants of the data loss (reference.variants.SemanticStats.summary()), or None
    semantic: dict[str, Any] | None = None
    manual_errors: dict[str, str] = field(default_factory=dict)  # output -> why manual is missing
    metrics: dict[str, Any] | None = None  # compiled metrics as evaluate(return_dict=True) names them
    metrics_error: str | None = None  # why the compiled metrics could not be measured


def _numpy_terms(out: StepOutputs) -> tuple[list[np.ndarray], list[Any], list[Any], list[Any]]:
    """(outputs, logits, masks, custom-loss values) of one step as numpy; a custom loss's own mask is
    merged into its output's mask."""
    out_np = [np.asarray(p) for p in out.outputs]
    lg_np = [None if t is None else np.asarray(t) for t in out.logits]
    m_np = [None if t is None else np.asarray(t) for t in out.masks]
    v_np = [None if t is None else np.asarray(t, np.float64) for t in out.values]
    vmasks = out.value_masks
    for i in range(len(m_np)):
        if vmasks[i] is not None:
            vm = np.asarray(vmasks[i]).astype(bool)
            prev = m_np[i]
            m_np[i] = vm if prev is None else (prev.astype(bool) & vm)
    return out_np, lg_np, m_np, v_np


def _reference_losses(prober: Prober, ys, sw, out_np, m_np, lg_np, v_np,
                      unsupported: dict[str, str]) -> dict[str, float]:
    """The reference L_o,b of every output of one batch; an output the reference cannot compute is
    recorded in `unsupported` (output -> why) and left out from then on."""
    losses_b: dict[str, float] = {}
    for i, o in enumerate(prober.outputs):
        spec = prober.specs.get(o)
        if spec is None or o in unsupported:
            continue
        if spec.kind == "custom" and v_np[i] is None:
            unsupported[o] = f"the loss {spec.label!r} has no call() losscheck can run"
            continue
        try:
            with np.errstate(all="ignore"):
                losses_b[o] = output_batch_loss(
                    spec, ys[i], out_np[i], sample_weight=sw, mask=m_np[i], logits=lg_np[i], values=v_np[i]
                )
        except Exception as exc:  # noqa: BLE001 - shapes the reference cannot reproduce: no manual, never a fake
            unsupported[o] = f"{type(exc).__name__}: {exc}"
            continue
    return losses_b


@dataclass
class _Totals:
    """What the pass adds up over its batches."""

    ev: EpochMean = field(default_factory=EpochMean)
    reg: EpochMean = field(default_factory=EpochMean)
    manual: EpochMean = field(default_factory=EpochMean)
    per_out: dict[str, EpochMean] = field(default_factory=dict)
    per_out_log: dict[str, list[float]] = field(default_factory=dict)
    batch_totals: list[tuple[int, float]] = field(default_factory=list)
    batch_output_losses: list[dict[str, float]] = field(default_factory=list)
    unsupported: dict[str, str] = field(default_factory=dict)
    nb: int = 0

    def result(self, semantic: SemanticStats, keras_metrics: Any) -> InferenceResult:
        per_out, per_out_log, unsupported = self.per_out, self.per_out_log, self.unsupported
        metric_values = None if keras_metrics is None else keras_metrics.end()
        return InferenceResult(
            evaluate=self.ev.value,
            regularization=self.reg.value,
            manual=None if unsupported else self.manual.value,
            output_loss={o: m.value for o, m in per_out.items()},
            output_loss_keras_log=({o: float(np.mean(v)) if v else 0.0 for o, v in per_out_log.items()}
                                   if is_tensorflow() else {o: m.value for o, m in per_out.items()}),
            batch_totals=self.batch_totals,
            batch_output_losses=self.batch_output_losses,
            manual_unsupported=sorted(unsupported),
            n_batches=self.nb,
            semantic=None if unsupported else semantic.summary(),
            manual_errors=dict(unsupported),
            metrics=metric_values,
            metrics_error=None if keras_metrics is None else keras_metrics.error,
        )


def inference_pass(prober: Prober, observers: Sequence[Callable[[BatchResult], None]], metrics: bool,
                   joint: Any = None, class_weight=None, joint_limit: int | None = None) -> InferenceResult:
    """See Prober.inference_pass (which puts the state a call updates back afterwards). `joint`: a
    training.VariantSetup whose variants run in the same compiled step (probes/joint.py) on the batches
    within the first `joint_limit` samples (all when None), their batch losses added up in it
    (class-weighted too with `class_weight`). Without metrics, the compiled inference step is kept on
    the prober for its next pass."""
    from losscheck.probes.keras_metrics import KerasMetrics

    keras_metrics = KerasMetrics(prober.model) if metrics else None
    specs = prober.specs
    per_out = {o: EpochMean() for o in prober.outputs if specs.get(o) is not None}
    totals = _Totals(per_out=per_out, per_out_log={o: [] for o in per_out})
    weights = prober.loaded.loss_weights
    semantic = SemanticStats(specs, weights, prober.outputs)
    step = both = cm = None
    first = True
    for start, stop, xs, ys, sw in prober.batches():
        # Keras's array adapter casts every float array (x, y, sample_weight) to floatx
        xs, ys = [floatx(a) for a in xs], [floatx(a) for a in ys]
        sw = None if sw is None else floatx(sw)
        n = stop - start
        if first:
            cm = None if keras_metrics is None else keras_metrics.begin(structure(xs), structure(ys), sw)
            first = False
        if joint is not None and (joint_limit is None or stop <= joint_limit):
            if both is None:
                both = joint.compiled or joint.build(prober, (xs, ys, sw), sw is not None, cm, joint)
                joint.compiled = both
            cw = prober.class_weighted(ys, sw, class_weight) if class_weight else None
            out, values = both(structure(xs), structure(ys), sw, cw)
            joint.add(values, n)
        else:
            if step is None:
                key = ("inference", sw is not None)
                step = None if cm is not None else prober.compiled.get(key)
                if step is None:
                    step = inference_step(prober, (xs, ys, sw), sw is not None, cm)
                if cm is None:
                    prober.compiled[key] = step
            out = step(structure(xs), structure(ys), sw)
        totals.nb += 1
        total, r = float(out.total), float(out.regularization)
        totals.ev.add(total, n)
        totals.reg.add(r, n)
        totals.batch_totals.append((n, total))
        out_np, lg_np, m_np, v_np = _numpy_terms(out)
        raw_np: list[np.ndarray | None] = [None] * len(out_np)
        if any(out.activations):
            raw_step = prober.compiled.get(("raw_logits",))
            if raw_step is None:
                raw_step = prober.compiled[("raw_logits",)] = raw_logits_step(prober, (xs, ys, sw))
            raw_np = [None if t is None else np.asarray(t) for t in raw_step(structure(xs))]
        losses_b = _reference_losses(prober, ys, sw, out_np, m_np, lg_np, v_np, totals.unsupported)
        for o, v in losses_b.items():
            per_out[o].add(v, n)
            totals.per_out_log[o].append(v)
        totals.batch_output_losses.append(losses_b)
        data_loss = sum(weights[o] * v for o, v in losses_b.items())
        totals.manual.add(data_loss, n)
        res = BatchResult(start, stop, xs, ys, sw, out_np, lg_np, m_np, v_np, total, r, losses_b, data_loss,
                          raw_np, out.activations)
        if not totals.unsupported:
            semantic(res)
        for obs in observers:
            obs(res)
    return totals.result(semantic, keras_metrics)
