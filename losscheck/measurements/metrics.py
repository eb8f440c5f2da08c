"""Measurements of one area: compiled metrics and targets measured on the inference pass."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class MetricMeasurements:
    """compiled metrics and targets measured on the inference pass."""
