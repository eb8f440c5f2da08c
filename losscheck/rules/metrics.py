"""Rules of the metrics area (see losscheck.rules): compiled metrics against the loss, metrics that
average batch values, thresholds that do not fit the output's range, class-id metrics given
probabilities, and targets the loss does not expect."""

from __future__ import annotations

import math

from losscheck.core.codes import Severity
from losscheck.core.finding import Finding
from losscheck.core.significance import scale_of, significant
from losscheck.core.taxonomy import UNIT_RANGE_KINDS
from losscheck.measurements import Measurements
from losscheck.measurements.metrics import (
    MetricFacts,
    MetricMeasurements,
    OutputFacts,
    TargetFacts,
    ThresholdFacts,
)
from losscheck.rules import rule

_CLIPPED = {"kl_divergence": "KL divergence clips targets to [1e-7, 1], so negative targets count as zero",
            "mean_squared_logarithmic_error": "MSLE clips targets at 1e-7, so negative targets count as zero",
            "poisson": "the Poisson loss -y log p then rewards small predictions"}


@rule("metric-vs-loss")
def metric_vs_loss(m: Measurements) -> list[Finding]:
    """A compiled metric that is the output's own loss function but differs from the loss Keras logs:
    the gap (logged - metric) split into penalties, loss weight and the averaging that differs
    (sample weights, masks, batch means)."""
    mm = m.metrics
    if mm is None:
        return []
    out = []
    for e in mm.metrics:
        o = mm.outputs.get(e.output)
        if e.keras is None or not e.same_as_loss or o is None or o.data_loss is None:
            continue
        f = _vs_loss(m, mm, e, e.keras, o, o.data_loss)
        if f is not None:
            out.append(f)
    return out


def _vs_loss(m: Measurements, mm: MetricMeasurements, e: MetricFacts, kv: float, o: OutputFacts,
             data_loss: float) -> Finding | None:
    single = mm.single_loss
    if single and "evaluate" not in m.figures:
        return None
    if single:
        logged, logged_name = float(m.figures["evaluate"]), "loss"
    else:
        logged = o.keras_log if o.keras_log is not None else data_loss
        logged_name = f"{e.output}_loss"
    gap = logged - kv
    if not math.isnan(gap) and not significant(gap, m.rtol, scale_of(logged)):
        return None
    parts = []
    if single:
        penalties = float(m.figures.get("regularization", 0.0))
        if penalties:
            parts.append(f"penalties {penalties:+.6g} (regularization is in the loss only)")
        w = o.loss_weight
        if w != 1.0:
            parts.append(f"loss weight {w:g}: {(w - 1.0) * data_loss:+.6g} (the loss is {w:g} x the output's loss)")
        data_logged = data_loss
    else:
        data_logged = logged
    rest = data_logged - kv
    if significant(rest, m.rtol, scale_of(kv)):
        if mm.sample_weighted:
            how = ("`weighted_metrics` divide sum(w*l) by sum(w), the loss divides it by the element count"
                   if e.weighted else "`metrics` ignore sample weights, the loss applies them")
            parts.append(f"sample weights {rest:+.6g} ({how})")
        elif o.masked:
            parts.append(f"masks {rest:+.6g} (the metric averages over every unmasked element of the dataset, the "
                         "loss per batch)")
        else:
            parts.append(f"per-batch averaging {rest:+.6g} (the loss averages batch means, the metric "
                         "every sample)")
    return Finding(
        "metric-vs-loss",
        f"The metric {e.name!r} ({e.label}) is {kv:.6g} while Keras logs {logged_name} = {logged:.6g} "
        f"(difference {gap:+.6g}): " + ("; ".join(parts) or "no single cause") + ".",
        magnitude=gap, subject=e.output, between=(logged_name, e.name),
        advice="compare the metric with the loss only after removing these terms; use `weighted_metrics` to weight "
               "a metric as the loss is weighted")


@rule("metric-batch-mean")
def metric_batch_mean(m: Measurements) -> list[Finding]:
    """A metric whose function gives one value per batch: Keras reports the mean of the batch values,
    not the value on the whole dataset (magnitude: reported - dataset value, when computed)."""
    if m.metrics is None:
        return []
    out = []
    for e in m.metrics.metrics:
        if e.keras is None or not e.scalar or not e.batch_sizes:
            continue
        sizes, kv, dataset = e.batch_sizes, e.keras, e.dataset
        partial = f", the last one of {sizes[-1]}" if len(sizes) > 1 and sizes[-1] != sizes[0] else ""
        shown = f"{dataset:.6g}" if dataset is not None else "not computed (the data is too large to keep)"
        out.append(Finding(
            "metric-batch-mean",
            f"The metric {e.name!r} ({e.label}) returns one value per batch, so Keras reports the mean of "
            f"{len(sizes)} batch values ({kv:.6g}; batches of {sizes[0]}{partial}, each counting once), not the "
            f"value on the whole dataset: {shown}. It changes with the batch size.",
            magnitude=None if dataset is None else kv - dataset, subject=e.output, between=("evaluate", "dataset"),
            advice="return one value per sample (no reduction over the batch axis), or make it a stateful Metric "
                   "that accumulates sums over batches and computes the ratio in result()"))
    return out


def _probabilities(o: OutputFacts) -> bool:
    """The output gives probabilities: a sigmoid/softmax, or every value in [0, 1]."""
    lo, hi = o.value_range if o.value_range is not None else (0.0, 1.0)
    return o.activation in ("sigmoid", "softmax") or (lo >= 0.0 and hi <= 1.0)


def _range_text(o: OutputFacts) -> str:
    lo, hi = o.value_range if o.value_range is not None else (math.nan, math.nan)
    return f"activation {o.activation or 'unknown'}; values in [{lo:.4g}, {hi:.4g}]"


def _fits_logits(thresholds: float | tuple[float, ...] | None) -> bool:
    """Thresholds that suit logits or tanh values: none inside (0, 1), where probabilities are cut
    (0.0 is the logit of 0.5 and tanh's midpoint); no threshold (a row's maximum) suits any scale."""
    if thresholds is None:
        return True
    values = thresholds if isinstance(thresholds, tuple) else (thresholds,)
    return not any(0.0 < t < 1.0 for t in values)


@rule("metric-threshold")
def metric_threshold(m: Measurements) -> list[Finding]:
    """A threshold metric whose threshold does not fit the range of the output it reads, for binary
    targets: a probability threshold (inside (0, 1)) on logits or tanh values, priced against the same
    metric on probabilities made from the outputs; or a threshold at or outside [0, 1] (0.0 suits
    logits) on probabilities, priced against the metric at 0.5."""
    if m.metrics is None:
        return []
    out = []
    for e in m.metrics.metrics:
        o = m.metrics.outputs.get(e.output)
        if e.keras is None or e.threshold is None or o is None or not o.binary_targets:
            continue  # regression targets: a threshold metric there is the user's own choice
        if _probabilities(o):
            f = _threshold_on_probabilities(e, e.keras, e.threshold, o)
        elif _fits_logits(e.threshold.thresholds):
            continue
        else:
            f = _threshold_on_logits(e, e.keras, e.threshold, o)
        if f is not None:
            out.append(f)
    return out


def _threshold_on_logits(e: MetricFacts, kv: float, th: ThresholdFacts, o: OutputFacts) -> Finding | None:
    alt = th.on_probabilities
    if alt is None:
        return None
    act = o.activation
    what = "tanh outputs mapped to (p + 1) / 2" if act == "tanh" else "sigmoid(outputs)"
    thr = th.thresholds
    thr_text = f"{thr[0]:g}" if isinstance(thr, tuple) and len(thr) == 1 else (
        "its thresholds in [0, 1]" if isinstance(thr, tuple) or thr is None else f"{thr:g}")
    kind = "logits" if act in (None, "linear") else f"{act} values"
    return Finding(
        "metric-threshold",
        f"{e.label} {e.name!r} reads output {e.output!r} as probabilities (threshold {thr_text}), but the "
        f"output gives {kind} ({_range_text(o)}): Keras reports {kv:.6g}; on {what} it is {alt:.6g}.",
        magnitude=kv - alt, subject=e.output, between=("evaluate", "probabilities"),
        advice="threshold logits at 0 (e.g. BinaryAccuracy(threshold=0.0)), pass from_logits=True where the "
               "metric has it (AUC), or add the activation to the model's output")


def _threshold_on_probabilities(e: MetricFacts, kv: float, th: ThresholdFacts, o: OutputFacts) -> Finding | None:
    thr = th.thresholds
    t = thr[0] if isinstance(thr, tuple) and len(thr) == 1 else thr
    if not isinstance(t, float) or 0.0 < t < 1.0 or th.at_half is None:
        return None
    side = "above" if t <= 0.0 else "not above"
    verdict = "positive" if t <= 0.0 else "negative"
    return Finding(
        "metric-threshold",
        f"{e.label} {e.name!r} reads output {e.output!r} with threshold {t:g}, a threshold for logits, but the "
        f"output gives probabilities ({_range_text(o)}): every value is {side} it, so every prediction counts as "
        f"{verdict}. Keras reports {kv:.6g}; at threshold 0.5 it is {th.at_half:.6g}.",
        magnitude=kv - th.at_half, subject=e.output, between=None,
        advice="threshold probabilities at 0.5 (the default); keep threshold=0.0 for a linear (logit) output")


@rule("metric-class-ids")
def metric_class_ids(m: Measurements) -> list[Finding]:
    """A metric that reads class ids (IoU, MeanIoU) given probabilities or scores: it truncates them
    to integers, so Keras's value is not the IoU of the predicted classes (magnitude: Keras's value -
    the metric on class ids made from the outputs)."""
    if m.metrics is None:
        return []
    out = []
    for e in m.metrics.metrics:
        c, o = e.class_ids, m.metrics.outputs.get(e.output)
        if c is None or o is None or not c.non_integer or c.on_class_ids is None:
            continue
        kind = "probabilities" if _probabilities(o) else "scores"
        if e.keras is not None:
            priced = f"Keras reports {e.keras:.6g}; on class ids ({c.how}) it is {c.on_class_ids:.6g}."
        else:
            priced = (f"Keras cannot compute it on these shapes (the compiled metrics fail); on class ids ({c.how}) "
                      f"it is {c.on_class_ids:.6g}.")
        out.append(Finding(
            "metric-class-ids",
            f"{e.label} {e.name!r} reads output {e.output!r} as class ids, but the output gives {kind} "
            f"({_range_text(o)}; {c.non_integer} of {c.values} values are not whole numbers): it truncates them to "
            f"integers and compares them with the targets value by value, not the predicted classes. " + priced,
            magnitude=None if e.keras is None else e.keras - c.on_class_ids, subject=e.output, between=None,
            advice="use OneHotMeanIoU / OneHotIoU with one-hot targets, MeanIoU(sparse_y_pred=False) with class-id "
                   "targets, or BinaryIoU on a single sigmoid output"))
    return out


_NAIVE_FORMULA = {"mean_squared_error": "np.mean((y - p)**2)", "mean_absolute_error": "np.mean(np.abs(y - p))",
                  "binary_crossentropy": "np.mean(-(y*np.log(p) + (1-y)*np.log(1-p)))"}


@rule("target-shape")
def target_shape(m: Measurements) -> list[Finding]:
    """Targets shaped so that the user's numpy (y (n,) against an (n, 1) output: the model's own loss
    over every pair) or Keras itself (class indices against a (n, C) output with an element-wise loss)
    computes something else."""
    if m.metrics is None:
        return []
    out = []
    for t in m.metrics.targets:
        o = t.output
        if t.per_sample is not None:
            formula = _NAIVE_FORMULA.get(t.kind, f"the {t.label} formula")
            naive = (f"gives {t.naive:.6g}" if t.naive is not None
                     else f"is not computed here ({t.flat_samples} samples: too many pairs for this loss)")
            out.append(Finding(
                "target-shape",
                f"Output {o!r} has shape (n, 1) and its targets (n,) (or the reverse). Keras matches their ranks "
                f"before the loss; numpy does not: {formula} on y and predict() output broadcasts to an (n, n) "
                f"matrix of every target against every prediction and {naive}, while the loss ({t.label}) per "
                f"sample averages to {t.per_sample:.6g}.",
                magnitude=None if t.naive is None else t.naive - t.per_sample, subject=o,
                advice="reshape first (y.reshape(-1) and p.reshape(-1)), or store y with the output's shape (n, 1)"))
        if t.keras_on_indices is not None and t.on_one_hot is not None:
            k, r = t.keras_on_indices, t.on_one_hot
            out.append(Finding(
                "target-shape",
                f"Output {o!r} has {t.classes} classes but its targets are class indices, and its loss "
                f"{t.label} is element-wise: Keras broadcasts each index against all {t.classes} outputs "
                f"without complaint and reports {k:.6g}; on one-hot targets the same loss is {r:.6g}.",
                magnitude=k - r, subject=o, between=("evaluate", "one-hot targets"),
                severity=Severity.WARNING,
                advice="one-hot encode the targets (keras.utils.to_categorical), or use "
                       "sparse_categorical_crossentropy with class indices"))
    return out


@rule("target-range")
def target_range(m: Measurements) -> list[Finding]:
    """Target values outside the range the loss is defined on, and distribution targets whose rows do
    not sum to 1 (magnitude: how many)."""
    if m.metrics is None:
        return []
    out = []
    for t in m.metrics.targets:
        if t.out_of_range:
            out.append(_out_of_range(t))
        if t.bad_rows:
            neg = f"; {t.negative_losses} per-element loss values are negative" if t.negative_losses else ""
            out.append(Finding(
                "target-range",
                f"Output {t.output!r} ({t.label}): {t.bad_rows} of {t.rows} target rows do not sum to 1 (sums in "
                f"[{t.row_min:.4g}, {t.row_max:.4g}]): the crossentropy scales with each row's sum and is no "
                f"longer comparable across samples{neg}.",
                magnitude=float(t.bad_rows), subject=t.output,
                advice="normalize each target row to sum to 1 (one-hot or a probability distribution)"))
    return out


def _out_of_range(t: TargetFacts) -> Finding:
    if t.kind in UNIT_RANGE_KINDS:
        what = (f"targets outside [0, 1] (range [{t.y_min:.4g}, {t.y_max:.4g}])",
                "it is no longer minimal at p = y and can be negative")
        advice = "scale the targets to [0, 1] (or use a regression loss for unbounded targets)"
    else:
        what = (f"negative targets (minimum {t.y_min:.4g})", _CLIPPED[t.kind])
        advice = "these losses need non-negative targets: shift or rescale them, or use MSE/MAE"
    neg = (f"; {t.negative_losses} per-element loss values are negative (minimum {t.loss_min:.4g})"
           if t.negative_losses else "")
    return Finding(
        "target-range",
        f"Output {t.output!r} ({t.label}) has {t.out_of_range} of {t.values} {what[0]}: {what[1]}{neg}. "
        "Keras computes the loss without complaint.",
        magnitude=float(t.out_of_range), subject=t.output, advice=advice)


def arrange(m: Measurements, findings: list[Finding]) -> list[Finding]:
    """The area's findings in report order: metric by metric (Keras's order), then the targets output
    by output; stable, so the rules' registration order holds for one metric or output."""
    mm = m.metrics
    if mm is None:
        return findings
    outputs = [t.output for t in mm.targets]

    def position(f: Finding) -> tuple[int, int]:
        if f.code.startswith("target-"):
            return (1, outputs.index(f.subject) if f.subject in outputs else len(outputs))
        for i, e in enumerate(mm.metrics):
            if _about(f, e):
                return (0, i)
        return (0, len(mm.metrics))

    return sorted(findings, key=position)


def _about(f: Finding, e: MetricFacts) -> bool:
    """Whether metric finding `f` is about metric `e` (by the name each rule writes into it)."""
    if f.code == "metric-vs-loss":
        return f.between is not None and f.between[1] == e.name
    if f.code == "metric-batch-mean":
        return f.message.startswith(f"The metric {e.name!r} ({e.label})")
    return f.message.startswith(f"{e.label} {e.name!r} reads output {e.output!r} ")
