"""Measurements of one area: the chain from a natural numpy loss to Keras's (masks, logits shortcut, clipping, precision)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class SemanticMeasurements:
    """the chain from a natural numpy loss to Keras's (masks, logits shortcut, clipping, precision)."""
