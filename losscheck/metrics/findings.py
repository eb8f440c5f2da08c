"""Findings about compiled metrics: metric-vs-loss, metric-batch-mean, metric-threshold."""

from __future__ import annotations

import math
from typing import Any

from losscheck.findings import Finding, relative_gap
from losscheck.metrics.observe import MetricsObserver


def _num(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and math.isfinite(float(value)) else None


def metric_findings(obs: MetricsObserver, inf: Any, loaded: Any, data: Any, rtol: float) -> list[Finding]:
    values = inf.metrics or {}
    out: list[Finding] = []
    for track in obs.tracks or []:
        e = track.entry
        kv = _num(values.get(e.name))
        if kv is None:
            continue
        f = _vs_loss(e, kv, inf, loaded, data, obs, rtol)
        if f is not None:
            out.append(f)
        if track.scalar:
            out.append(_batch_mean(obs, track, kv))
        if track.alt is not None and track.error is None:
            f = _threshold(obs, track, kv, rtol)
            if f is not None:
                out.append(f)
    return out


def _vs_loss(e, kv: float, inf, loaded, data, obs: MetricsObserver, rtol: float) -> Finding | None:
    spec = loaded.specs.get(e.output)
    if spec is None or e.spec is None or e.spec.kind != f"loss:{spec.kind}":
        return None
    single = len([o for o in loaded.output_names if loaded.specs.get(o) is not None]) == 1
    data_loss = inf.output_loss.get(e.output)
    if data_loss is None:
        return None
    if single:
        logged, logged_name = inf.evaluate, "loss"
    else:
        logged, logged_name = inf.output_loss_keras_log.get(e.output, data_loss), f"{e.output}_loss"
    if relative_gap(kv, logged) <= rtol:
        return None
    parts = []
    if single:
        if inf.regularization:
            parts.append(f"penalties {inf.regularization:+.6g} (regularization is in the loss only)")
        w = float(loaded.loss_weights.get(e.output, 1.0))
        if w != 1.0:
            parts.append(f"loss weight {w:g}: {(w - 1.0) * data_loss:+.6g} (the loss is {w:g} x the output's loss)")
        data_logged = data_loss
    else:
        data_logged = logged
    rest = data_logged - kv
    if abs(rest) > rtol * max(abs(kv), 1e-12):
        masked = e.output in obs.masked
        if data.sample_weight is not None:
            how = ("`weighted_metrics` divide sum(w*l) by sum(w), the loss divides it by the element count"
                   if e.weighted else "`metrics` ignore sample weights, the loss applies them")
            parts.append(f"sample weights {rest:+.6g} ({how})")
        elif masked:
            parts.append(f"masks {rest:+.6g} (the metric averages over every unmasked element of the dataset, the "
                         "loss per batch)")
        else:
            parts.append(f"per-batch averaging {rest:+.6g} (the loss averages batch means, the metric "
                         "every sample)")
    gap = logged - kv
    return Finding(
        "metric-vs-loss",
        f"The metric {e.name!r} ({e.label}) is {kv:.6g} while Keras logs {logged_name} = {logged:.6g} "
        f"(difference {gap:+.6g}): " + ("; ".join(parts) or "no single cause") + ".",
        magnitude=gap, subject=e.output, between=(logged_name, e.name),
        advice="compare the metric with the loss only after removing these terms; use `weighted_metrics` to weight "
               "a metric as the loss is weighted")


def _batch_mean(obs: MetricsObserver, track, kv: float) -> Finding:
    e = track.entry
    dataset = None
    try:
        dataset = obs.dataset_value(track)
    except Exception:  # noqa: BLE001 - the user's function may not run on the whole dataset at once
        dataset = None
    sizes = track.batch_sizes
    partial = f", the last one of {sizes[-1]}" if len(sizes) > 1 and sizes[-1] != sizes[0] else ""
    shown = f"{dataset:.6g}" if dataset is not None else "not computed (the data is too large to keep)"
    return Finding(
        "metric-batch-mean",
        f"The metric {e.name!r} ({e.label}) returns one value per batch, so Keras reports the mean of "
        f"{len(sizes)} batch values ({kv:.6g}; batches of {sizes[0]}{partial}, each counting once), not the value "
        f"on the whole dataset: {shown}. It changes with the batch size.",
        magnitude=None if dataset is None else kv - dataset, subject=e.output, between=("evaluate", "dataset"),
        advice="return one value per sample (no reduction over the batch axis), or make it a stateful Metric that "
               "accumulates sums over batches and computes the ratio in result()")


def _threshold(obs: MetricsObserver, track, kv: float, rtol: float) -> Finding | None:
    e = track.entry
    lo, hi = obs.ranges.get(e.output, (0.0, 1.0))
    act = obs.activations.get(e.output)
    if act in ("sigmoid", "softmax") or (lo >= 0.0 and hi <= 1.0) or not obs.binary_targets.get(e.output, False):
        return None  # probabilities already, or not a classification output (regression targets)
    alt = track.alt.result()
    if not isinstance(alt, (int, float)):
        return None
    what = "tanh outputs mapped to (p + 1) / 2" if act == "tanh" else "sigmoid(outputs)"
    thr = e.spec.option("thresholds", e.spec.option("threshold", 0.5)) if e.spec is not None else 0.5
    thr_text = f"{thr[0]:g}" if isinstance(thr, list) and len(thr) == 1 else (
        "its thresholds in [0, 1]" if isinstance(thr, list) else f"{thr:g}")
    kind = "logits" if act in (None, "linear") else f"{act} values"
    return Finding(
        "metric-threshold",
        f"{e.label} {e.name!r} reads output {e.output!r} as probabilities (threshold {thr_text}), but the output "
        f"gives {kind} (activation {act or 'unknown'}; values in [{lo:.4g}, {hi:.4g}]): Keras reports {kv:.6g}; on "
        f"{what} it is {float(alt):.6g}.",
        magnitude=kv - float(alt), subject=e.output, between=("evaluate", "probabilities"),
        advice="threshold logits at 0 (e.g. BinaryAccuracy(threshold=0.0)), pass from_logits=True where the metric "
               "has it (AUC), or add the activation to the model's output")
