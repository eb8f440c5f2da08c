"""Measurements of one area: breakdown's per-class / per-output / per-sample rows and totals."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class BreakdownMeasurements:
    """breakdown's rows and totals, as its report sections hold them.

    mode: "per_class" | "per_output" | "per_sample"; total: the data loss the rows add up to
    (per_output: plus the penalties, i.e. evaluate); outputs: how many outputs the model has;
    per_class: one row per (output, class or channel) with kind ("class", "channel" or "output"),
      loss, count, share, contribution, weight, prevalence, loss_positives, recall, iou, ...;
    per_output: one row per output with a loss: loss (the exact dataset mean), weight, weighted,
      share, and with several losses keras_log (what Keras logs as <output>_loss);
    samples, batch_size: the data's size and the batch size of the pass."""

    mode: str
    total: float = 0.0
    outputs: int = 1
    per_class: tuple[Mapping[str, Any], ...] = ()
    per_output: tuple[Mapping[str, Any], ...] = ()
    samples: int = 0
    batch_size: int = 32
