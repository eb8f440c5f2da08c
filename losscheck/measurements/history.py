"""Measurements of one area: a training history read from a file, matched against the figures."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class HistoryMeasurements:
    """a training history read from a file, matched against the figures."""
