"""Measurements of one area: what `inspect` reads from the model without data."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any


@dataclass(frozen=True)
class InspectMeasurements:
    """The model's loss configuration, training-dependent layers and regularizers (plain data, frozen).

    loss_config: output -> {loss, kind, reduction, options, loss_weight, output_shape, final_activation,
      feature_axis}; training_layers: layer family -> layer names; regularized_layers: the trainable
      layers with a penalty; regularizers: one row per regularizer {layer, attribute, regularizer, counted}."""

    loss_config: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    training_layers: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    regularized_layers: tuple[str, ...] = ()
    regularizers: tuple[Mapping[str, Any], ...] = ()
