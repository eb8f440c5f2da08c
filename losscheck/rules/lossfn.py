"""Rules of the loss-function area (see losscheck.rules), one per code: non-finite, loss-rank,
channels-first-axis, from-logits-mismatch, label-smoothing, batch-size-dependence.

They read `m.lossfn` (losscheck.measurements.lossfn) and the figures. `arrange` puts the area's
findings in report order: those that need no data first (non-finite weights, then output by output
loss-rank, channels-first-axis, from-logits-mismatch, label-smoothing), then those the data showed
(non-finite values, loss-rank on real outputs, from-logits-mismatch from the output values,
batch-size-dependence), then a non-finite figure nothing else explains."""

from __future__ import annotations

import math

from losscheck.core.finding import Finding
from losscheck.core.formatting import plural, shape_text
from losscheck.measurements import Measurements
from losscheck.measurements.lossfn import (
    LossFnMeasurements,
    OutputLossRecord,
    RangeRecord,
)
from losscheck.reference.specs import CROSSENTROPY_KINDS, ELEMENTWISE_LAST_AXIS_MEAN
from losscheck.rules import rule
from losscheck.rules.lossfn_findings import figure_finding, moved, rank_finding, site_finding, weight_finding

PROBABILITY_ACTIVATIONS = ("softmax", "sigmoid")


# -- non-finite ------------------------------------------------------------------------------------
@rule("non-finite")
def non_finite(m: Measurements) -> list[Finding]:
    """NaN/Inf in the model's weights, else in the data or the model's pass over it (located), else a
    non-finite figure."""
    lf = m.lossfn
    if lf is None:  # a command that measured no loss function (breakdown, the callback): the figures only
        return figure_finding(m)
    found = [weight_finding(s) for s in lf.non_finite_weights]
    found += [site_finding(s, m.figures.get("evaluate")) for s in lf.non_finite or ()]
    return found or figure_finding(m)


# -- loss-rank -------------------------------------------------------------------------------------
def _rank_lost(o: OutputLossRecord) -> bool:
    return o.rank is not None and not o.rank.ok


@rule("loss-rank")
def loss_rank(m: Measurements) -> list[Finding]:
    """A loss function that does not return one value per sample (the batch axis first), built-in
    (Dice/Tversky with axis=None) or the user's own, with how it lost the batch axis, the gap to its
    per-sample form when measured and, when the batch-size rerun measured it, how its loss moved."""
    lf = m.lossfn
    if lf is None:
        return []
    return [rank_finding(o, o.rank, lf.batch_size, m.rtol) for o in lf.outputs.values()
            if o.rank is not None and _rank_lost(o)]


# -- channels-first-axis ---------------------------------------------------------------------------
@rule("channels-first-axis")
def channels_first_axis(m: Measurements) -> list[Finding]:
    """An element-wise loss or crossentropy reduces over axis -1 of an output whose features sit on
    another axis."""
    lf = m.lossfn
    if lf is None:
        return []
    out = []
    for o in lf.outputs.values():
        axis = o.mismatched_axis
        if axis is None:
            continue
        rank = len(o.shape)
        reduced = shape_text(tuple(d for i, d in enumerate(o.shape) if i != rank - 1))
        if o.kind in ELEMENTWISE_LAST_AXIS_MEAN:
            op = "averages over axis -1"
            effect = ("Numerically the total is still the mean over all elements, but per-feature weights, masks or "
                      "sample weights shaped against axis -1 land on a spatial axis.")
        else:
            op = "sums/normalizes over axis -1 as the class axis"
            effect = "The class axis is wrong: the loss treats spatial positions as classes."
        msg = (f"Output {o.name!r} has shape {shape_text(o.shape)} with its {o.shape[axis]} features on axis {axis} "
               f"({o.channels_reason}); {o.label} {op} ({o.shape[-1]} values along a spatial axis), giving values "
               f"of shape {reduced}. {effect}")
        advice = (f"Move the features last (channels_last, or keras.layers.Permute before the loss) or pass "
                  f"axis={axis} to a loss that takes it; see the reduction trace.")
        out.append(Finding("channels-first-axis", msg, magnitude=None, subject=o.name, advice=advice))
    return out


# -- from-logits-mismatch --------------------------------------------------------------------------
def _graph_says_probabilities(o: OutputLossRecord) -> bool:
    """A softmax/sigmoid output feeds a from_logits=True crossentropy (graph evidence, no data)."""
    return o.kind in CROSSENTROPY_KINDS and o.from_logits and o.activation in PROBABILITY_ACTIVATIONS


def _advice_probs(act: str) -> str:
    return (f"Use from_logits=False with the {act} output, or drop the {act} (linear output) and keep "
            "from_logits=True; apply the activation at prediction time.")


def _static_logits(o: OutputLossRecord, st: RangeRecord | None) -> Finding:
    act = str(o.activation)
    msg = (f"Output {o.name!r} ends in a {act} (layer {o.activation_layer!r}), so it holds probabilities, "
           f"but its loss, {o.label}, treats them as logits (from_logits=True).")
    magnitude = None
    if st is not None:
        if st.probabilities:
            msg += (f" Confirmed from the outputs: every value lies in [{st.lo:.4g}, {st.hi:.4g}]"
                    + (f" and each row sums to 1 (max deviation {st.row_dev:.2g})" if st.rows_sum_to_one else "")
                    + ".")
        k, f = st.keras, st.flipped
        if k is not None and f is not None:
            msg += (f" Keras's TensorFlow backend notices the {o.activation} and silently uses its cached input, so "
                    f"it reports {k:.6g}; taken as logits, as the loss asks (another backend, a cast or a Lambda "
                    f"after the activation, or numpy on predict()), the same outputs give {f:.6g}.")
            magnitude = f - k
    return Finding("from-logits-mismatch", msg, magnitude=magnitude, subject=o.name, advice=_advice_probs(act))


def _data_logits(o: OutputLossRecord, st: RangeRecord) -> list[Finding]:
    k, f = st.keras, st.flipped
    if o.from_logits:
        # rows of one value (or of unknown length) always "sum to 1" or say nothing
        looks = o.shape and o.kind != "binary_crossentropy" and o.shape[-1] != 1 and st.rows_sum_to_one
        if not looks:
            return []
        msg = (f"Output {o.name!r} holds probabilities (every value in [{st.lo:.4g}, {st.hi:.4g}], each row "
               f"sums to 1 within {st.row_dev:.2g}) but its loss, {o.label}, treats them as logits "
               "(from_logits=True).")
        return [Finding("from-logits-mismatch", msg, magnitude=None if k is None or f is None else f - k,
                        subject=o.name, advice=_advice_probs("softmax"))]
    if o.activation in PROBABILITY_ACTIVATIONS or st.probabilities or st.count == 0:
        return []
    share = st.outside / st.count
    msg = (f"Output {o.name!r} is not a probability (its final activation is {o.activation or 'unknown'}"
           f"; values range over [{st.lo:.4g}, {st.hi:.4g}], {share:.1%} outside [0, 1]) but its loss, "
           f"{o.label}, expects probabilities (from_logits=False): Keras clips the values to [1e-7, 1 - 1e-7] "
           "before the log.")
    if k is not None and f is not None:
        msg += f" The loss is {k:.6g} as configured and {f:.6g} with from_logits=True."
    return [Finding("from-logits-mismatch", msg, magnitude=None if k is None or f is None else k - f,
                    subject=o.name,
                    advice="Pass from_logits=True to the loss (the output is linear), or add a sigmoid/softmax "
                           "activation to the output layer.")]


@rule("from-logits-mismatch")
def from_logits_mismatch(m: Measurements) -> list[Finding]:
    """Probabilities fed to a from_logits=True crossentropy, or unbounded values (logits) to a
    from_logits=False one: from the graph (the final activation), confirmed and priced by the output
    values when the data was measured, or from the output values alone."""
    lf = m.lossfn
    if lf is None:
        return []
    out: list[Finding] = []
    for o in lf.outputs.values():
        if _graph_says_probabilities(o):
            out.append(_static_logits(o, o.ranges))
        elif o.ranges is not None:
            out += _data_logits(o, o.ranges)
    return out


# -- label-smoothing -------------------------------------------------------------------------------
def _xlogx(v: float) -> float:
    return v * math.log(v) if v > 0 else 0.0


def smoothing_floor(kind: str, ls: float, n_classes: int | None) -> float | None:
    """The minimum of the loss over predictions for hard (one-hot / 0-1) targets smoothed by ls: the
    entropy of the smoothed target distribution (None for other kinds)."""
    if kind == "categorical_crossentropy" and n_classes and n_classes > 1:
        hot, other = 1.0 - ls + ls / n_classes, ls / n_classes
        return -(_xlogx(hot) + (n_classes - 1) * _xlogx(other))
    if kind == "binary_crossentropy":
        q = 0.5 * ls
        return -(_xlogx(q) + _xlogx(1.0 - q))
    return None


@rule("label-smoothing")
def label_smoothing(m: Measurements) -> list[Finding]:
    """Smoothed targets put a floor under the crossentropy; on data, the floor's share of the loss."""
    lf = m.lossfn
    if lf is None:
        return []
    out = []
    for o in lf.outputs.values():
        ls = o.label_smoothing
        if ls <= 0:
            continue
        k = o.shape[-1] if o.shape else None
        value = smoothing_floor(o.kind, ls, k)
        if o.kind == "categorical_crossentropy":
            target = f"one-hot targets become {1 - ls + ls / k:.4g} / {ls / k:.4g} over {k} classes" if k else \
                "one-hot targets are smoothed"
        else:
            target = f"0/1 targets become {0.5 * ls:.4g} / {1 - 0.5 * ls:.4g}"
        if value is None:
            msg = (f"Loss {o.label} of output {o.name!r} uses label_smoothing={ls:g}: {target}, so the "
                   "loss cannot reach 0.")
        else:
            msg = (f"Loss {o.label} of output {o.name!r} uses label_smoothing={ls:g}: {target}, so even a "
                   f"perfect model scores at least {value:.6g} (the entropy of the smoothed targets)"
                   + (f", {value * o.weight:.6g} after the loss weight {o.weight:g}" if o.weight != 1.0 else "")
                   + ".")
            if o.loss is not None and math.isfinite(o.loss):
                share = value / o.loss if o.loss else float("nan")
                msg += f" On this data the loss is {o.loss:.6g}, so the floor is {share:.1%} of it."
        out.append(Finding("label-smoothing", msg, magnitude=value, subject=o.name,
                           advice="Compare losses against this floor, not 0; accuracy-like metrics are unaffected."))
    return out


# -- batch-size-dependence -------------------------------------------------------------------------
def _cause(reduction: str | None, masked: bool, weighted: bool) -> str:
    """Why one output's batch loss depends on how the data is batched."""
    if reduction == "sum":
        return 'reduction="sum": each batch adds its per-sample losses instead of averaging them'
    if masked and reduction in ("sum_over_batch_size", "mean", "mean_with_sample_weight"):
        return "masked: each batch is divided by its own count of unmasked elements"
    if weighted and reduction == "mean_with_sample_weight":
        return "mean_with_sample_weight: each batch is divided by its own sum of weights"
    return "the loss mixes samples of a batch"


@rule("batch-size-dependence")
def batch_size_dependence(m: Measurements) -> list[Finding]:
    """The reported loss moves between two batch sizes on the same data: the ratio, the outputs that
    move and why (a loss-rank loss, reduction="sum", a mask, mean_with_sample_weight)."""
    lf: LossFnMeasurements | None = m.lossfn
    probe = lf.batch_size if lf is not None else None
    if lf is None or probe is None or not moved(probe.value, probe.other_value, m.rtol):
        return []
    rest = [o for o, (a, b) in probe.per_output.items() if moved(a, b, m.rtol)]
    explained = {o.name for o in lf.outputs.values() if _rank_lost(o)}
    reductions = {o.name: o.reduction for o in lf.outputs.values()}
    causes = {o: ("its loss function reduces over the batch axis (see loss-rank)" if o in explained
                  else _cause(reductions.get(o), o in lf.masked, lf.weighted)) for o in rest}
    why = []
    for o in rest:
        a, b = probe.per_output[o]
        why.append(f"output {o!r}: {a:.6g} -> {b:.6g} (x{b / a:.4g}; {causes[o]})" if a else f"output {o!r}")
    on = f"the first {plural(probe.samples, 'sample')}" if probe.samples else "the same data"
    msg = (f"The reported loss depends on the batch size: {probe.value:.6g} at batch {probe.batch_size}, "
           f"{probe.other_value:.6g} at batch {probe.other_batch_size} on {on} and weights (ratio "
           f"{probe.ratio:.4g}).")
    if why:
        msg += " Moving: " + "; ".join(why) + "."
    if any(reductions.get(o) == "sum" for o in rest):
        advice = ('reduction="sum" adds the per-sample losses of each batch, so the loss (and the gradient scale) '
                  'grows with the batch size; use the default reduction="sum_over_batch_size".')
    elif rest and all(o in explained for o in rest):
        advice = ("The loss function mixes the samples of a batch (see loss-rank): return one value per sample "
                  "and let Keras average, then the loss no longer depends on the batch size.")
    elif rest and all(causes[o].startswith(("masked", "mean_with")) for o in rest):
        advice = ("This is how Keras normalizes per batch; compare losses only at one batch size (and "
                  "without shuffling), or weight batches by their valid count yourself.")
    else:
        advice = ("A loss whose value depends on how the data is batched mixes samples across the batch (a "
                  "reduction over axis 0, a division by the batch size, a batch statistic); make it per-sample "
                  "and let Keras average.")
    subject = rest[0] if len(rest) == 1 else None
    return [Finding("batch-size-dependence", msg, magnitude=probe.ratio, subject=subject, between=None,
                    advice=advice)]


# -- report order ----------------------------------------------------------------------------------
def arrange(m: Measurements, findings: list[Finding]) -> list[Finding]:
    """The area's findings in report order (see the module docstring); stable within a stage, so the
    rules' registration order holds there."""
    lf = m.lossfn
    if lf is None:
        return findings

    def stage(f: Finding) -> tuple[int, int]:
        o = lf.outputs.get(f.subject or "")
        if f.code == "non-finite":
            return (0, -1) if lf.non_finite_weights else (1, 0) if lf.non_finite else (2, 0)
        if f.code == "batch-size-dependence" or o is None:
            return (1, 0)
        if f.code == "loss-rank" and o.rank is not None and o.rank.on_data:
            return (1, 0)
        if f.code == "from-logits-mismatch" and not _graph_says_probabilities(o):
            return (1, 0)
        return (0, o.index)

    return sorted(findings, key=stage)
