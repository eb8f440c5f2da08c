"""Measurements of one area: facts about the data source (pipeline order, batch size)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class DataMeasurements:
    """facts about the data source (pipeline order, batch size)."""
