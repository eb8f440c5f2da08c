"""Measurements of one area: compiled metrics and targets measured on the inference pass.

Every value here is plain data: Keras's own metric values (as evaluate(return_dict=True) gives them),
losscheck's numpy recomputations on the same batches, and per-output facts about outputs and targets.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType


@dataclass(frozen=True)
class ThresholdFacts:
    """A threshold metric (accuracy at 0.5, Precision, ...) recomputed on probabilities made from the
    outputs: sigmoid(outputs), or (p + 1) / 2 for tanh outputs.

    thresholds: the metric's threshold(s) as it holds them (a float, a tuple of floats, or None: no
      threshold, e.g. FBetaScore(threshold=None) takes each row's maximum).
    on_probabilities: the metric's value on those probabilities (None when it is not one number).
    at_half: for one threshold at or outside [0, 1] (0.0, the logit midpoint), the metric on the outputs
      as they are with its threshold at 0.5 (None otherwise)."""

    thresholds: float | tuple[float, ...] | None = 0.5
    on_probabilities: float | None = None
    at_half: float | None = None


@dataclass(frozen=True)
class ClassIdFacts:
    """A metric that reads its predictions as class ids (IoU, MeanIoU with sparse_y_pred=True) and what
    it was given.

    values, non_integer: prediction values seen and those that are not whole numbers (the metric
      truncates them to integers);
    how: how class ids were made from the outputs ("argmax over the last axis", "outputs > 0.5");
    on_class_ids: the metric on those class ids (None when they could not be made)."""

    values: int = 0
    non_integer: int = 0
    how: str = ""
    on_class_ids: float | None = None


@dataclass(frozen=True)
class MetricFacts:
    """One compiled metric.

    name: as Keras logs it; label: its class or function name; output: the output it measures;
    weighted: a `weighted_metrics` entry (sample weights apply);
    keras: Keras's value when it is one finite number, else None;
    same_as_loss: the metric is the output's own compiled loss function;
    scalar: its function gives one value per batch (Keras then averages batch values);
    batch_sizes: the size of every batch it was updated on (scalar metrics);
    dataset: a scalar metric computed once on every sample (None: not computed);
    threshold: set for a threshold metric recomputed on probabilities (None otherwise);
    class_ids: set for a metric that reads class ids (None otherwise)."""

    name: str
    label: str
    output: str
    weighted: bool = False
    keras: float | None = None
    same_as_loss: bool = False
    scalar: bool = False
    batch_sizes: tuple[int, ...] = ()
    dataset: float | None = None
    threshold: ThresholdFacts | None = None
    class_ids: ClassIdFacts | None = None


@dataclass(frozen=True)
class OutputFacts:
    """One output as the metrics see it.

    has_loss: the output has a compiled loss; loss_weight: its loss weight;
    data_loss: its exact data loss (batch losses weighted by size), None without a loss;
    keras_log: what Keras logs as <output>_loss (the unweighted mean of its batch losses);
    masked: Keras masks some of its elements; binary_targets: every target is 0 or 1;
    activation: its last activation (None when unknown);
    value_range: (min, max) of its predictions (None when not floating point)."""

    name: str
    has_loss: bool = True
    loss_weight: float = 1.0
    data_loss: float | None = None
    keras_log: float | None = None
    masked: bool = False
    binary_targets: bool = False
    activation: str | None = None
    value_range: tuple[float, float] | None = None


@dataclass(frozen=True)
class TargetFacts:
    """The targets of one output (with a built-in loss) against what its loss expects.

    label, kind: the loss's label and kind (losscheck.loading.lossspec);
    naive: when y is (n,) and the output (n, 1) or the reverse (element-wise losses), the naive numpy
      figure: the output's own loss on y - p broadcast to (n, n), mean_ij L(y_i, p_j), on predict()
      outputs (None: not computed, too many samples for that loss); per_sample: mean_i L(y_i, p_i) on the
      same outputs; flat_samples: the n of both (per_sample None and 0 otherwise);
    classes, keras_on_indices, on_one_hot: class indices against a (classes)-wide output with an
      element-wise loss: what Keras reports and the same loss on one-hot targets (None otherwise);
    values, out_of_range, y_min, y_max: target values checked against the loss's range and those
      outside it ([0, 1] for taxonomy.UNIT_RANGE_KINDS, >= 0 for NON_NEGATIVE_KINDS);
    rows, bad_rows, row_min, row_max: target rows of a distribution loss and those not summing to 1;
    negative_losses, loss_min: per-element loss values below 0 (counted once targets are out of range)."""

    output: str
    label: str
    kind: str
    naive: float | None = None
    per_sample: float | None = None
    flat_samples: int = 0
    classes: int = 0
    keras_on_indices: float | None = None
    on_one_hot: float | None = None
    values: int = 0
    out_of_range: int = 0
    y_min: float = float("inf")
    y_max: float = float("-inf")
    rows: int = 0
    bad_rows: int = 0
    row_min: float = float("inf")
    row_max: float = float("-inf")
    negative_losses: int = 0
    loss_min: float = float("inf")


@dataclass(frozen=True)
class MetricMeasurements:
    """Compiled metrics and targets measured on the inference pass.

    metrics: every compiled metric, in Keras's order; outputs: output name -> OutputFacts;
    sample_weighted: the data has sample weights; targets: per output with a built-in loss, in
    output order. The pass's total loss and penalties are the figures evaluate and regularization."""

    metrics: tuple[MetricFacts, ...] = ()
    outputs: Mapping[str, OutputFacts] = field(default_factory=lambda: MappingProxyType({}))
    sample_weighted: bool = False
    targets: tuple[TargetFacts, ...] = ()

    @property
    def single_loss(self) -> bool:
        """Exactly one output has a loss (Keras then logs only `loss`)."""
        return sum(1 for o in self.outputs.values() if o.has_loss) == 1
