"""Measurements of one area: validation-data figures and per-class contributions."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any


@dataclass(frozen=True)
class SplitFacts:
    """--validation-split: where Keras cuts the data and how the two parts' targets differ.

    targets: output -> {"train": profile, "validation": profile} (probes/validation.py::target_profile);
    lines: one sentence per output on how the parts differ (label balance, target range)."""

    fraction: float
    split_at: int
    training_samples: int
    validation_samples: int
    targets: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    lines: tuple[str, ...] = ()


@dataclass(frozen=True)
class ValidationMeasurements:
    """Validation-data figures and per-class contributions (the figure evaluate_val is in the figures).

    samples: validation samples; regularization: the penalties evaluate includes on the validation data;
    parts: fit - evaluate_val by cause (weight update, training-mode layers, class weight,
      regularization, generalization gap; they add up exactly), where fit is `fit`, fit's figure
      (fit_logged with a matched --history, else fit_epoch); empty without it;
    per_class_gap: per (output, class) rows {output, class, loss_train, loss_val, contribution_train,
      contribution_val, gap}, largest |gap| first; they sum to the data-loss gap (empty when the loss
      does not split per class);
    split: set with --validation-split; training_mode_samples: the --probe-samples subset the weight
      update and layer rows were estimated on (None: all samples);
    layer_names: the model's dropout, batchnorm and noise layers (named in the sentence on val_loss)."""

    samples: int
    regularization: float = 0.0
    parts: Mapping[str, float] = field(default_factory=lambda: MappingProxyType({}))
    per_class_gap: tuple[Mapping[str, Any], ...] = ()
    split: SplitFacts | None = None
    training_mode_samples: int | None = None
    layer_names: tuple[str, ...] = ()
    fit: str = "fit_epoch"
