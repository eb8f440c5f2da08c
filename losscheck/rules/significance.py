"""The one place that decides whether a difference is significant."""

from __future__ import annotations


def scale_of(evaluate: float | None) -> float:
    """The reference size of every relative test: max(|evaluate|, 1e-12) (0 when evaluate is None)."""
    return max(abs(evaluate if evaluate is not None else 0.0), 1e-12)


def significant(delta: float | None, rtol: float, scale: float) -> bool:
    """True when |delta| > rtol * scale; a missing (None) delta counts as significant, a NaN one not."""
    return delta is None or abs(delta) > rtol * scale
