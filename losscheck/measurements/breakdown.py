"""Measurements of one area: breakdown's per-class / per-output / per-sample rows and totals."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class BreakdownMeasurements:
    """breakdown's per-class / per-output / per-sample rows and totals."""
