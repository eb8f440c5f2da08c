"""Measurements of one area: plain facts about the loaded model (outputs, losses, legacy origin)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ModelFacts:
    """plain facts about the loaded model (outputs, losses, legacy origin)."""
