"""Report sections and findings of `losscheck breakdown` from the observers' sums (no TensorFlow)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from losscheck.breakdown.decompose import ChannelStats, ClassStats, channel_rows, class_rows
from losscheck.findings import Finding
from losscheck.report.text import plural

#: a class is "wrong" below this recall / IoU (element-wise) or recall (sample-wise)
WRONG_BELOW = 0.5
#: ... and diluted when its positives / samples lose at least this many times the output's mean loss
DILUTION_FACTOR = 2.0
QUANTILES = (0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99)
HIST_BINS = 20

ROW_ORDER = ("output", "class", "kind", "loss", "count", "share", "contribution", "weight", "prevalence",
             "positives", "loss_positives", "loss_negatives", "share_from_positives", "recall", "precision", "iou",
             "accuracy", "predicted")


def _ordered(row: dict[str, Any]) -> dict[str, Any]:
    out = {k: row[k] for k in ROW_ORDER if k in row}
    out.update({k: v for k, v in row.items() if k not in out})
    return out


def _weighting_phrase(sample_weight: bool, masked: bool) -> str:
    parts = []
    if sample_weight:
        parts.append("sample weights")
    if masked:
        parts.append("masks (per batch: sum over valid entries / valid count)")
    return ("; " + " and ".join(parts) + " included exactly as Keras applies them") if parts else ""


def class_section(obs, inf) -> dict[str, Any]:
    obs.check_note()
    n = obs.n
    rows: list[dict[str, Any]] = []
    lines = []
    for o in obs.outputs:
        st = obs.stats.get(o)
        lw = obs.lw[o]
        spec = obs.prober.specs[o]
        if isinstance(st, ChannelStats):
            rows += channel_rows(o, st, n, lw)
            how = "mean" if st.combine == "mean" else "sum"
            over = (f"{how} over the {st.n_channels} channels of the channel losses" if st.n_channels > 1
                    else "the loss of its single channel")
            lines.append(
                f"{o}: loss = {over}; a channel's loss is its per-element {spec.label} reduced exactly as "
                "Keras reduces the output (per batch sum(w*l)/size, batches weighted by their size)")
        elif isinstance(st, ClassStats):
            rows += class_rows(o, st, n, lw)
            lines.append(
                f"{o}: loss = sum over true classes of weight x class loss = the count-weighted mean of the "
                f"class means (weight = count / {n} without sample weights or masks; otherwise each class's "
                "share of Keras's per-element weights)")
        else:
            value = obs.whole.get(o, 0.0) / n
            rows.append({"class": "all", "output": o, "kind": "output", "loss": value,
                         "count": obs.whole_count.get(o, 0), "weight": 1.0, "contribution": lw * value})
            lines.append(f"{o}: one row (not split)")
    total = float(inf.manual)
    for r in rows:
        r["share"] = r["contribution"] / total if total else None
    summed = sum(r["contribution"] for r in rows)
    if abs(summed - total) > 1e-9 * max(abs(total), 1e-12):
        obs.notes.append(f"rows add up to {summed!r}, the reference data loss is {total!r}")
    if len(obs.outputs) > 1:
        lines.append("total = sum over outputs of loss weight x output loss (penalties excluded)")
    elif obs.outputs and obs.lw[obs.outputs[0]] != 1.0:
        lines.append(f"total = {obs.lw[obs.outputs[0]]:g} (the loss weight) x the loss of {obs.outputs[0]}")
    phrase = _weighting_phrase(_has_sw(obs), _has_mask(obs)).lstrip("; ")
    lines.append(phrase[:1].upper() + phrase[1:])
    return {"total": total, "per_class": [_ordered(r) for r in rows],
            "identity": "\n".join(line for line in lines if line)}


def _has_sw(obs) -> bool:
    return obs.prober.data.sample_weight is not None


def _has_mask(obs) -> bool:
    return bool(getattr(obs, "masked", False))


def class_findings(rows: list[dict[str, Any]], total: float, n_outputs: int) -> list[Finding]:
    """class-dilution: a class the model gets wrong (recall or IoU below 0.5), whose positives lose at
    least DILUTION_FACTOR times the output's mean loss, and which is a minority (its positives under
    half of its channel, or fewer samples than an equal share of the classes): the mean loss averages
    its failure away. A model that is bad everywhere has no diluted class (nothing stands out)."""
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
        subject = str(k) if n_outputs == 1 else f"{o}:{k}"
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


def output_section(prober, inf, layers: list[dict[str, Any]]) -> dict[str, Any]:
    lw = prober.loaded.loss_weights
    outs = [o for o in prober.outputs if prober.specs.get(o) is not None]
    logged = len(outs) > 1  # Keras logs <name>_loss only when the model has more than one loss
    # compiled (the default): the batch dimension is unknown when traced, so Mean gets no weight;
    # run_eagerly=True: weighted by the batch size, i.e. the exact mean
    eager = bool((prober.loaded.info.compile_config or {}).get("run_eagerly"))
    from losscheck.probes.compiled import is_tensorflow

    tensorflow = is_tensorflow()
    rows = []
    for o in outs:
        loss = float(inf.output_loss[o])
        row: dict[str, Any] = {"output": o, "loss": loss, "weight": float(lw[o]), "weighted": float(lw[o] * loss),
                               "share": None, "loss_function": prober.loaded.loss_labels().get(o)}
        if logged:
            row["keras_log"] = loss if eager else float(inf.output_loss_keras_log[o])
            row["keras_log_mode"] = ("eager: batch-size-weighted mean" if eager
                                     else "compiled: unweighted mean of the batch losses" if tensorflow
                                     else "compiled with static batch shapes: batch-size-weighted mean")
            row["keras_log_difference"] = row["keras_log"] - loss
        rows.append(row)
    reg = float(inf.regularization)
    total = sum(r["weighted"] for r in rows) + reg
    for r in rows:
        r["share"] = r["weighted"] / total if total else None
    for r in layers:
        r["share"] = r["penalty"] / total if total else None
    return {
        "total": total,
        "per_output": rows,
        "regularization": {"total": reg, "share": reg / total if total else None, "layers": layers},
        "identity": ("total = sum over outputs of weight x loss (each loss the exact dataset mean: batch losses "
                     "weighted by batch size) + regularization = evaluate"
                     + (("; keras_log is Keras's own <output>_loss log: "
                         + ("with run_eagerly=True, the batch-size-weighted mean (exact)" if eager
                            else "the unweighted mean of the batch losses (compiled mode)" if tensorflow
                            else "the batch-size-weighted mean (compiled with static batch shapes)"))
                        if logged else "")),
    }


def output_findings(rows: list[dict[str, Any]], rtol: float, n: int, batch_size: int) -> list[Finding]:
    findings = []
    last = n % batch_size
    nb = math.ceil(n / batch_size)
    for r in rows:
        log = r.get("keras_log")
        if log is None:
            continue
        diff = log - r["loss"]
        if abs(diff) <= rtol * max(abs(r["loss"]), 1e-12):
            continue
        why = (f"the last of the {nb} batches has {plural(last, 'sample')} instead of {batch_size}" if last else
               "the batches differ in size")
        findings.append(Finding(
            "partial-batch",
            f"Keras logs {r['output']}_loss = {log:.6g}, the exact dataset mean is {r['loss']:.6g} ({diff:+.3g}): "
            f"Keras averages the per-batch losses of an output without weighting them by batch size, and {why}.",
            magnitude=diff, subject=r["output"],
            advice="Compare per-output losses with the exact means shown here, or use a batch size that divides the "
                   "number of samples; the total `loss` is weighted by batch size and is not affected."))
    return findings


def distribution(losses: np.ndarray) -> dict[str, Any]:
    x = np.asarray(losses, np.float64)
    if x.size == 0:
        return {"count": 0}
    lo, hi = float(x.min()), float(x.max())
    scale = "log" if lo > 0 and hi / lo > 1e3 else "linear"  # heavy tails: log-spaced bins
    bins: Any = np.geomspace(lo, hi, HIST_BINS + 1) if scale == "log" else (HIST_BINS if hi > lo else 1)
    counts, edges = np.histogram(x, bins=bins)
    return {
        "count": int(x.size), "mean": float(x.mean()), "std": float(x.std()), "min": float(x.min()),
        "max": float(x.max()),
        "quantiles": {f"p{round(q * 100):02d}": float(np.quantile(x, q)) for q in QUANTILES},
        "histogram": {"scale": scale, "edges": [float(e) for e in edges], "counts": [int(c) for c in counts]},
    }


def sample_section(obs, inf) -> dict[str, Any]:
    obs.check_note()
    total = float(inf.manual)
    dist = distribution(obs.losses)
    mean = dist.get("mean", 0.0)
    if abs(mean - total) > 1e-9 * max(abs(total), 1e-12):
        obs.notes.append(f"per-sample losses average to {mean!r}, the reference data loss is {total!r}")
    return {
        "total": total,
        "per_sample": obs.top,
        "distribution": dist,
        "identity": ("a sample's loss is its exact share of the data loss (its elements' losses, sample weights, "
                     "masks and loss weights applied as Keras applies them per batch): the data loss is the mean "
                     "of the per-sample losses"),
    }
