"""The rows and totals of `losscheck breakdown` from the observers' sums, frozen into the record its
rules (losscheck.rules.breakdown) and its report sections read. No TensorFlow."""

from __future__ import annotations

from typing import Any

import numpy as np

from losscheck.measurements import frozen
from losscheck.measurements.breakdown import BreakdownMeasurements
from losscheck.probes.breakdown.decompose import ChannelStats, ClassStats, channel_rows, class_rows

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


def breakdown_measurements(mode: str, parts: dict[str, Any], outputs: int, samples: int,
                           batch_size: int) -> BreakdownMeasurements:
    """The rows and totals of `parts` (what class_section, output_section or sample_section made,
    with the per-class metric rows), frozen."""
    reg = parts.get("regularization")
    return BreakdownMeasurements(
        mode=mode, total=float(parts.get("total", 0.0)), outputs=outputs,
        per_class=frozen(parts.get("per_class", ())), per_output=frozen(parts.get("per_output", ())),
        samples=samples, batch_size=batch_size, identity=parts.get("identity", ""),
        regularization=None if reg is None else frozen(reg), per_sample=frozen(parts.get("per_sample", ())),
        distribution=frozen(parts.get("distribution", {})),
        per_class_metrics=frozen(parts.get("per_class_metrics", ())))


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
