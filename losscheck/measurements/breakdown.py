"""Measurements of one area: breakdown's per-class / per-output / per-sample rows and totals."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
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
    samples, batch_size: the data's size and the batch size of the pass;
    identity: how the rows add up to the total (one sentence per line);
    regularization: per_output: {total, share, layers: [{layer, penalty, share}, ...]};
    per_sample: the worst samples {index, loss, [outputs], [sample_weight], target, prediction};
    distribution: per_sample: {count, mean, std, min, max, quantiles, histogram} of every sample's loss;
    per_class_metrics: per_class: {output, class, <metric name>: value} rows of the per-class metrics."""

    mode: str
    total: float = 0.0
    outputs: int = 1
    per_class: tuple[Mapping[str, Any], ...] = ()
    per_output: tuple[Mapping[str, Any], ...] = ()
    samples: int = 0
    batch_size: int = 32
    identity: str = ""
    regularization: Mapping[str, Any] | None = None
    per_sample: tuple[Mapping[str, Any], ...] = ()
    distribution: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    per_class_metrics: tuple[Mapping[str, Any], ...] = ()
