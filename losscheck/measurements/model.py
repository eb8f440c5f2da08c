"""Measurements of the model area: plain facts about the loaded model (outputs, legacy origin)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ModelFacts:
    """Plain facts about the loaded model.

    output_names: the model's outputs, in order.
    legacy: the file was saved by tf.keras 2.x; saved_by: what saved it (e.g. "tf.keras 2.15.0").
    keras2_differences: (clause, changes the evaluate figure) for each Keras 2/3 loss difference that
      applies to this model (losscheck.loading.legacy.keras2_differences); empty unless legacy."""

    output_names: tuple[str, ...] = ()
    legacy: bool = False
    saved_by: str = ""
    keras2_differences: tuple[tuple[str, bool], ...] = ()
