"""Measurements of one area: loss-function probes: rank, batch-size rerun, axis, logits, label smoothing, non-finite values, reduction trace."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class LossFnMeasurements:
    """loss-function probes: rank, batch-size rerun, axis, logits, label smoothing, non-finite values, reduction trace."""
