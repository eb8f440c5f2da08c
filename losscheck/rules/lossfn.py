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
from losscheck.core.significance import significant
from losscheck.core.taxonomy import BATCH_AXIS_DEFAULT_KINDS
from losscheck.measurements import Measurements
from losscheck.measurements.lossfn import (
    BatchSizeRecord,
    LossFnMeasurements,
    NonFiniteSite,
    OutputLossRecord,
    RangeRecord,
    RankRecord,
)
from losscheck.reference.specs import CROSSENTROPY_KINDS, ELEMENTWISE_LAST_AXIS_MEAN
from losscheck.rules import rule

PROBABILITY_ACTIVATIONS = ("softmax", "sigmoid")


# -- non-finite ------------------------------------------------------------------------------------
def _weight_finding(s: NonFiniteSite) -> Finding:
    return Finding("non-finite", f"Weight {s.name!r} of layer {s.layer!r} holds {s.count} non-finite values: every "
                   "output is poisoned.", magnitude=float(s.count or 0), subject=s.layer,
                   advice="The saved weights diverged; restore an earlier checkpoint or lower the learning rate.")


def _site_finding(s: NonFiniteSite, evaluate: float | None) -> Finding:
    poisoned = evaluate is not None and not math.isfinite(evaluate)
    if s.place in ("input", "target"):
        where = f"sample {s.sample}" + (f", position {list(s.position)}" if s.position else "")
        return Finding(
            "non-finite",
            f"The {s.place} array {s.name!r} holds {s.kind} at {where} ({s.count} non-finite value"
            f"{'s' if s.count != 1 else ''} in all)" + (
                f"; the batch that contains it gives a non-finite loss, so evaluate ({evaluate}), fit and "
                "the numpy reference are all non-finite." if poisoned
                else "; the reported loss stays finite here (the value is masked or weighted out), but any "
                     "gradient through it is not guaranteed to."),
            magnitude=float(s.count or 0), subject=s.name,
            advice=f"Clean or drop sample {s.sample} (and the others: np.argwhere(~np.isfinite({s.name}))) before "
                   "training; Keras does not skip non-finite samples.")
    if s.place == "sample_weight":
        return Finding("non-finite", f"sample_weight holds {s.kind} at sample {s.sample} ({s.count} in all).",
                       magnitude=float(s.count or 0), subject="sample_weight",
                       advice="Give every sample a finite weight (0 to ignore it).")
    if s.place == "pipeline":
        what = str(s.name)
        return Finding("non-finite", f"The pipeline's {what} holds NaN or Inf at sample {s.sample}; the batch that "
                       f"contains it gives a non-finite loss, so evaluate ({evaluate}), fit and the numpy reference "
                       "are all non-finite.", magnitude=float(s.count or 0), subject=what.split(" ")[-1].strip("'"),
                       advice="Clean or drop the non-finite samples in the pipeline (e.g. a filter on "
                              "tf.math.is_finite); Keras does not skip them.")
    start, stop = s.batch or (0, 0)
    if s.place == "layer":
        return Finding("non-finite", f"The inputs are finite, but layer {s.layer!r} outputs non-finite values "
                       f"first (sample {s.sample}, {plural(s.count, 'value')} in the batch {start}-{stop - 1}).",
                       subject=s.layer, magnitude=float(s.count or 0),
                       advice="Check that layer's operation (log/sqrt/division of non-positive values, "
                              "overflow in exp) or its weights.")
    if s.place == "output":
        return Finding("non-finite", f"Output {s.name!r} is non-finite at sample {s.sample}.", subject=s.name,
                       advice="Check the layers before this output.")
    if s.place == "loss":
        where = f" at sample {s.sample}" if s.sample is not None else f" on the batch {start}-{stop - 1}"
        return Finding("non-finite", f"Inputs, weights and outputs are finite, but the loss of output {s.name!r} is "
                       f"non-finite{where}: the loss function itself produces it.", subject=s.name,
                       advice="Guard the loss's logs, square roots and divisions (clip, add epsilon).")
    return Finding("non-finite", f"The loss of the batch {start}-{stop - 1} is non-finite although inputs, weights, "
                   "outputs and each output's loss values are finite: the penalties (model.losses) or the reduction "
                   "(e.g. mean_with_sample_weight with zero weights) produce it.",
                   advice="Check regularizers and add_loss terms, and sample weights summing to 0.")


def _figure_finding(m: Measurements) -> list[Finding]:
    """A non-finite figure is never "OK": named when nothing located the NaN/Inf."""
    bad = [(name, float(v)) for name, v in m.figures.items() if not math.isfinite(float(v))]
    if not bad:
        return []
    name, value = bad[0]
    return [Finding("non-finite", f"the figure {name} is {value}", subject=name,
                    advice="find where the NaN or Inf comes from: inputs, targets, weights or the loss")]


@rule("non-finite")
def non_finite(m: Measurements) -> list[Finding]:
    """NaN/Inf in the model's weights, else in the data or the model's pass over it (located), else a
    non-finite figure."""
    lf = m.lossfn
    if lf is None:  # a command that measured no loss function (breakdown, the callback): the figures only
        return _figure_finding(m)
    found = [_weight_finding(s) for s in lf.non_finite_weights]
    found += [_site_finding(s, m.figures.get("evaluate")) for s in lf.non_finite or ()]
    return found or _figure_finding(m)


# -- loss-rank -------------------------------------------------------------------------------------
def moved(a: float, b: float, rtol: float) -> bool:
    """Two values of the same loss at two batch sizes differ: |a - b| > max(rtol, 1e-5) * max(|a|, |b|)
    (False when either is not finite)."""
    if not (math.isfinite(a) and math.isfinite(b)):
        return False
    return significant(a - b, max(rtol, 1e-5), max(abs(a), abs(b), 1e-12))


def _rank_finding(o: OutputLossRecord, r: RankRecord, probe: BatchSizeRecord | None, rtol: float) -> Finding:
    shapes = dict(r.shapes)
    big = r.shapes[-1][0]
    got = shapes[big]
    if not got:
        how = "returns a scalar (shape ()) at every batch size"
    elif r.moved_to is not None:
        how = f"returns shape {shape_text(got)}: the batch axis moved to axis {r.moved_to} (a transpose)"
    else:
        if len(set(shapes.values())) == 1:
            sizes = f"shape {shape_text(got)} at every batch size ({', '.join(str(b) for b in shapes)})"
        else:
            sizes = ", ".join(f"{shape_text(s)} at batch {b}" for b, s in shapes.items())
        how = f"returns {sizes}: the batch axis is gone"
    parts = [f"Loss {o.loss_name!r} of output {o.name!r} on y_pred {shape_text(r.y_pred_shape)} {how}, not one "
             f"value per sample (a shape starting with {big})."]
    batch_level = o.kind in BATCH_AXIS_DEFAULT_KINDS
    axes = o.per_sample_axes or tuple(range(1, max(len(o.shape), 2)))
    cls = "".join(w.capitalize() for w in o.kind.split("_"))  # the keras.losses class of a built-in kind
    if batch_level:
        parts.append(f"With axis=None, {cls} computes one value over every element of the batch, so each batch "
                     "gives one value that mixes its samples.")
    elif r.factor is not None:
        f = r.factor
        if abs(f - big) <= 0.01 * big:
            parts.append(f"It sums over the batch: {big} identical samples give {f:.4g}x the value of one sample.")
        elif abs(f - 1.0) <= 0.01:
            parts.append(f"It averages over the batch ({big} identical samples give the value of one).")
        else:
            parts.append(f"It reduces over the batch: {big} identical samples give {f:.4g}x the value of one sample.")
    if r.slices:
        parts.append("Cause: " + "; ".join(dict.fromkeys(r.slices)) + ", so the reduction over axis -1 runs "
                     "over the batch.")
    elif r.batch_reductions:
        parts.append("Cause: " + "; ".join(dict.fromkeys(r.batch_reductions)) + ".")
    if not got:
        parts.append("Keras skips its own reduction for a scalar and reports it as it is"
                     + (" (a batch sum, so the reported loss scales with the batch size)"
                        if r.factor is not None and abs(r.factor - big) <= 0.01 * big else "")
                     + "; sample weights then scale it by their mean instead of weighting samples.")
    elif r.moved_to is not None:
        parts.append("Keras's mean over all elements is unchanged, but sample weights and masks broadcast against "
                     "the wrong axis.")
    else:
        parts.append(f"Keras divides by the {plural(math.prod(got), 'element')} it gets, not by the batch size.")
    if o.per_sample_loss is not None and o.loss is not None:
        gap = o.loss - o.per_sample_loss
        parts.append(f"On the data Keras reports {o.loss:.6g} for this output; with one value per sample "
                     f"({cls}(axis={_axes_text(axes)})) it is {o.per_sample_loss:.6g} (difference {gap:+.6g}).")
    message = " ".join(parts)
    if probe is not None:
        a, b = probe.per_output.get(o.name, (math.nan, math.nan))
        if moved(a, b, rtol):
            message += (f" Measured on the data: this output's loss is {a:.6g} at batch {probe.batch_size} and "
                        f"{b:.6g} at batch {probe.other_batch_size} (x{b / a:.4g}).")
    if batch_level:
        advice = (f"Pass axis={_axes_text(axes)} (every axis but the batch axis), e.g. keras.losses.{cls}("
                  f"axis={_axes_text(axes)}): one value per sample, which Keras then averages over the batch.")
    elif r.slice_fixes:
        advice = (f"Slice with {r.slice_fixes[0]}" + "".join(f" (and {fix})" for fix in r.slice_fixes[1:])
                  + " to keep the feature axis, and reduce over axis=-1 only.")
    elif r.moved_to is not None:
        advice = "Return the per-sample values with the batch axis first (drop the transpose)."
    else:
        advice = ("Return one value per sample: reduce over the feature axes only (axis=-1 or axis=list(range(1, "
                  "ndim))), never over axis 0 or over everything; let Keras average over the batch.")
    return Finding("loss-rank", message, magnitude=r.factor, subject=o.name, advice=advice)


def _axes_text(axes: tuple[int, ...]) -> str:
    return str(axes[0]) if len(axes) == 1 else "(" + ", ".join(str(a) for a in axes) + ")"


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
    return [_rank_finding(o, o.rank, lf.batch_size, m.rtol) for o in lf.outputs.values()
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
