"""The findings of the loss-function rules (rules/lossfn.py) that take most words: one per non-finite
site (a weight, the data, a layer, an output, a loss) and a loss that lost its batch axis."""

from __future__ import annotations

import math

from losscheck.core.finding import Finding
from losscheck.core.formatting import plural, shape_text
from losscheck.core.significance import significant
from losscheck.core.taxonomy import BATCH_AXIS_DEFAULT_KINDS
from losscheck.measurements import Measurements
from losscheck.measurements.lossfn import BatchSizeRecord, NonFiniteSite, OutputLossRecord, RankRecord


# -- non-finite ------------------------------------------------------------------------------------
def weight_finding(s: NonFiniteSite) -> Finding:
    """Non-finite values in a weight of the model."""
    return Finding("non-finite", f"Weight {s.name!r} of layer {s.layer!r} holds {s.count} non-finite values: every "
                   "output is poisoned.", magnitude=float(s.count or 0), subject=s.layer,
                   advice="The saved weights diverged; restore an earlier checkpoint or lower the learning rate.")


def site_finding(s: NonFiniteSite, evaluate: float | None) -> Finding:
    """Where the data or the model's pass over it first turns non-finite."""
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


def figure_finding(m: Measurements) -> list[Finding]:
    """A non-finite figure is never "OK": named when nothing located the NaN/Inf."""
    bad = [(name, float(v)) for name, v in m.figures.items() if not math.isfinite(float(v))]
    if not bad:
        return []
    name, value = bad[0]
    return [Finding("non-finite", f"the figure {name} is {value}", subject=name,
                    advice="find where the NaN or Inf comes from: inputs, targets, weights or the loss")]


# -- loss-rank -------------------------------------------------------------------------------------
def moved(a: float, b: float, rtol: float) -> bool:
    """Two values of the same loss at two batch sizes differ: |a - b| > max(rtol, 1e-5) * max(|a|, |b|)
    (False when either is not finite)."""
    if not (math.isfinite(a) and math.isfinite(b)):
        return False
    return significant(a - b, max(rtol, 1e-5), max(abs(a), abs(b), 1e-12))


def rank_finding(o: OutputLossRecord, r: RankRecord, probe: BatchSizeRecord | None, rtol: float) -> Finding:
    """How the loss of output `o` lost its batch axis, what that does, and how to keep it."""
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
                     f"({cls}(axis={axes_text(axes)})) it is {o.per_sample_loss:.6g} (difference {gap:+.6g}).")
    message = " ".join(parts)
    if probe is not None:
        a, b = probe.per_output.get(o.name, (math.nan, math.nan))
        if moved(a, b, rtol):
            message += (f" Measured on the data: this output's loss is {a:.6g} at batch {probe.batch_size} and "
                        f"{b:.6g} at batch {probe.other_batch_size} (x{b / a:.4g}).")
    if batch_level:
        advice = (f"Pass axis={axes_text(axes)} (every axis but the batch axis), e.g. keras.losses.{cls}("
                  f"axis={axes_text(axes)}): one value per sample, which Keras then averages over the batch.")
    elif r.slice_fixes:
        advice = (f"Slice with {r.slice_fixes[0]}" + "".join(f" (and {fix})" for fix in r.slice_fixes[1:])
                  + " to keep the feature axis, and reduce over axis=-1 only.")
    elif r.moved_to is not None:
        advice = "Return the per-sample values with the batch axis first (drop the transpose)."
    else:
        advice = ("Return one value per sample: reduce over the feature axes only (axis=-1 or axis=list(range(1, "
                  "ndim))), never over axis 0 or over everything; let Keras average over the batch.")
    return Finding("loss-rank", message, magnitude=r.factor, subject=o.name, advice=advice)


def axes_text(axes: tuple[int, ...]) -> str:
    """`axis=` as Python writes it: one int or a tuple."""
    return str(axes[0]) if len(axes) == 1 else "(" + ", ".join(str(a) for a in axes) + ")"
