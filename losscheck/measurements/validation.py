"""Measurements of one area: validation-data figures and per-class contributions."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ValidationMeasurements:
    """validation-data figures and per-class contributions."""
