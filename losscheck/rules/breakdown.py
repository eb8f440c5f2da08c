"""Rules of the breakdown area (see losscheck.rules): what the per-class and per-output rows show."""

from __future__ import annotations

import math

from losscheck.core.finding import Finding
from losscheck.core.formatting import plural
from losscheck.core.significance import scale_of, significant
from losscheck.measurements import Measurements
from losscheck.rules import rule

#: a class is "wrong" below this recall / IoU (element-wise) or recall (sample-wise)
WRONG_BELOW = 0.5
#: ... and diluted when its positives / samples lose at least this many times the output's mean loss
DILUTION_FACTOR = 2.0


@rule("partial-batch")
def partial_batch(m: Measurements) -> list[Finding]:
    """An output whose logged <output>_loss (the unweighted mean of its batch losses) differs from its
    exact dataset mean because the batches differ in size (magnitude: logged - exact)."""
    b = m.breakdown
    if b is None:
        return []
    findings = []
    last = b.samples % b.batch_size
    nb = math.ceil(b.samples / b.batch_size)
    for r in b.per_output:
        log = r.get("keras_log")
        if log is None:
            continue
        diff = log - r["loss"]
        if not math.isnan(diff) and not significant(diff, m.rtol, scale_of(r["loss"])):
            continue
        why = (f"the last of the {nb} batches has {plural(last, 'sample')} instead of {b.batch_size}" if last else
               "the batches differ in size")
        findings.append(Finding(
            "partial-batch",
            f"Keras logs {r['output']}_loss = {log:.6g}, the exact dataset mean is {r['loss']:.6g} ({diff:+.3g}): "
            f"Keras averages the per-batch losses of an output without weighting them by batch size, and {why}.",
            magnitude=diff, subject=r["output"],
            advice="Compare per-output losses with the exact means shown here, or use a batch size that divides the "
                   "number of samples; the total `loss` is weighted by batch size and is not affected."))
    return findings


@rule("class-dilution")
def class_dilution(m: Measurements) -> list[Finding]:
    """A class the model gets wrong (recall or IoU below WRONG_BELOW), whose positives lose at least
    DILUTION_FACTOR times the output's mean loss, and which is a minority (its positives under half
    of its channel, or fewer samples than an equal share of the classes): the mean loss averages its
    failure away. A model that is bad everywhere has no diluted class (nothing stands out).
    Magnitude: the class's share of the total."""
    b = m.breakdown
    if b is None:
        return []
    rows, total = b.per_class, b.total
    out_loss: dict[str, float] = {}
    n_classes: dict[str, int] = {}
    for r in rows:
        if r["kind"] == "output":
            continue
        out_loss[r["output"]] = out_loss.get(r["output"], 0.0) + r["weight"] * r["loss"]
        n_classes[r["output"]] = n_classes.get(r["output"], 0) + 1
    findings = []
    for r in rows:
        if r["kind"] == "output" or r.get("recall") is None:
            continue
        o, k = r["output"], r["class"]
        mean = out_loss[o]
        subject = str(k) if b.outputs == 1 else f"{o}:{k}"
        share = r["share"] or 0.0
        if r["kind"] == "channel":
            iou, rec = r.get("iou"), r["recall"]
            wrong = (iou is not None and iou < WRONG_BELOW) or rec < WRONG_BELOW
            pos_loss = r.get("loss_positives")
            minority = (r.get("prevalence") or 0.0) < 0.5
            if not (wrong and minority and pos_loss is not None and pos_loss >= DILUTION_FACTOR * mean):
                continue
            msg = (f"class {k} (output {o}) is badly predicted: IoU {_pct(iou)}, recall {_pct(rec)} at 0.5. Its "
                   f"positive elements lose {pos_loss:.4g} each, {pos_loss / mean:.3g}x the output's mean loss "
                   f"{mean:.4g}: they are {_pct(r['prevalence'])} of the channel and the channel is 1 of "
                   f"{n_classes[o]} averaged, so the mean dilutes the failure (the class makes up {_pct(share)} of "
                   f"the total {total:.4g}).")
        else:
            rec = r["recall"]
            minority = (r.get("prevalence") or 0.0) < 1.0 / max(n_classes[o], 2)
            if not (rec < WRONG_BELOW and minority and r["loss"] >= DILUTION_FACTOR * mean):
                continue
            msg = (f"class {k} (output {o}) is badly predicted: recall {_pct(rec)} ({plural(r['count'], 'sample')}, "
                   f"{_pct(r['prevalence'])} of the data). Its samples lose {r['loss']:.4g} on average, "
                   f"{r['loss'] / mean:.3g}x the output's mean loss {mean:.4g}, but they weigh only "
                   f"{_pct(r['weight'])} in the mean, so the mean dilutes the failure (the class makes up "
                   f"{_pct(share)} of the total {total:.4g}).")
        findings.append(Finding(
            "class-dilution", msg, magnitude=share, subject=subject,
            advice="Track a per-class metric (recall, IoU) for this class rather than the mean loss; if it matters, "
                   "give it more weight (class or sample weights, focal or Dice loss) or more examples."))
    return findings


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:.3g}%"
