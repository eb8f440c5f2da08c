"""Measurements of the model area: plain facts about the loaded model (outputs, legacy origin, its own
training loop)."""

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


@dataclass(frozen=True)
class LoopMeasurements:
    """How a model's own training loop shaped what compare measured (None for Keras's default loop).

    steps: the training-loop methods the model overrides (train_step, test_step, compute_loss,
      compute_metrics); compiled_loss: some output has a compiled loss; add_loss: layers add losses.
    training_mode: the training-mode figures were measured (they compute what evaluate computes);
    manual: the numpy recomputation applies; decomposed: fit - evaluate was split into causes;
    evaluated: Keras's own evaluate gave a loss; own_figures: the figures named after the model's own
      log keys (fit_epoch_total_loss, ...)."""

    steps: tuple[str, ...] = ()
    compiled_loss: bool = True
    add_loss: bool = False
    training_mode: bool = True
    manual: bool = True
    decomposed: bool = True
    evaluated: bool = True
    own_figures: tuple[str, ...] = ()
