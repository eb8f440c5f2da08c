"""`label-smoothing` (info): smoothed targets put a floor under the crossentropy: even a perfect model
cannot go below the entropy of the smoothed target distribution."""

from __future__ import annotations

import math

from losscheck.checks.common import OutputLoss
from losscheck.findings import Finding


def _xlogx(v: float) -> float:
    return v * math.log(v) if v > 0 else 0.0


def floor(kind: str, ls: float, n_classes: int | None) -> float | None:
    """The minimum of the loss over predictions for hard (one-hot / 0-1) targets."""
    if kind == "categorical_crossentropy" and n_classes and n_classes > 1:
        hot, other = 1.0 - ls + ls / n_classes, ls / n_classes
        return -(_xlogx(hot) + (n_classes - 1) * _xlogx(other))
    if kind == "binary_crossentropy":
        q = 0.5 * ls
        return -(_xlogx(q) + _xlogx(1.0 - q))
    return None


def check(ol: OutputLoss) -> list[Finding]:
    ls = float(ol.option("label_smoothing", 0.0) or 0.0)
    if ls <= 0:
        return []
    k = ol.facts.shape[-1] if ol.facts.shape else None
    value = floor(ol.kind, ls, k)
    if ol.kind == "categorical_crossentropy":
        target = f"one-hot targets become {1 - ls + ls / k:.4g} / {ls / k:.4g} over {k} classes" if k else \
            "one-hot targets are smoothed"
    else:
        target = f"0/1 targets become {0.5 * ls:.4g} / {1 - 0.5 * ls:.4g}"
    if value is None:
        msg = (f"Loss {ol.spec.label} of output {ol.name!r} uses label_smoothing={ls:g}: {target}, so the "
               "loss cannot reach 0.")
    else:
        msg = (f"Loss {ol.spec.label} of output {ol.name!r} uses label_smoothing={ls:g}: {target}, so even a "
               f"perfect model scores at least {value:.6g} (the entropy of the smoothed targets)"
               + (f", {value * ol.weight:.6g} after the loss weight {ol.weight:g}" if ol.weight != 1.0 else "")
               + ".")
    return [Finding("label-smoothing", msg, magnitude=value, subject=ol.name,
                    advice="Compare losses against this floor, not 0; accuracy-like metrics are unaffected.")]


def enrich(findings: list[Finding], measured: float | None) -> None:
    floor_value = findings[0].magnitude if findings else None
    if measured is None or floor_value is None or not math.isfinite(measured):
        return
    f = findings[0]
    share = floor_value / measured if measured else float("nan")
    f.message += f" On this data the loss is {measured:.6g}, so the floor is {share:.1%} of it."
