"""Measurements of one area: the figures' decomposition and the facts the gap rules read (layer families, weights, spreads)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class GapMeasurements:
    """the figures' decomposition and the facts the gap rules read (layer families, weights, spreads)."""
