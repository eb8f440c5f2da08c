"""The one place that decides whether a difference is significant, and how far apart two figures are."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from losscheck.measurements import Measurements


def scale_of(evaluate: float | None) -> float:
    """The reference size of every relative test: max(|evaluate|, 1e-12) (0 when evaluate is None)."""
    return max(abs(evaluate if evaluate is not None else 0.0), 1e-12)


def significant(delta: float | None, rtol: float, scale: float) -> bool:
    """True when |delta| > rtol * scale; a missing (None) delta counts as significant, a NaN one not."""
    return delta is None or abs(delta) > rtol * scale


def moves_evaluate(m: Measurements, delta: float | None) -> bool:
    """significant(delta) relative to the measured evaluate figure: |delta| > m.rtol * |evaluate|."""
    return significant(delta, m.rtol, scale_of(m.figures.get("evaluate")))


def relative_gap(a: float, b: float) -> float:
    """|a - b| / max(|b|, tiny)."""
    return abs(a - b) / max(abs(b), 1e-12)
