"""Measurements of the loss-function area: what each compiled loss is and returns (rank probe, axis,
activation, options), where NaN/Inf sit, the output value ranges, the batch-size rerun and the
reduction trace. Plain data only."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any


def _empty() -> Mapping[str, Any]:
    return MappingProxyType({})


@dataclass(frozen=True)
class RankRecord:
    """What one loss function's `call` returned on tensors of its output's shape.

    shapes: (batch size, returned shape) per probed batch size, in probing order.
    y_pred_shape: the prediction's shape at the largest batch size.
    ok: the values keep the batch axis first and follow the batch size.
    factor: mean value of the largest batch of identical samples / of one sample (batch axis lost).
    moved_to: the axis the batch axis went to (a transpose). slices, slice_fixes, batch_reductions:
    what the traced graph and the source say dropped it. on_data: probed on real targets/outputs."""

    shapes: tuple[tuple[int, tuple[int, ...]], ...]
    y_pred_shape: tuple[int, ...]
    ok: bool
    factor: float | None = None
    moved_to: int | None = None
    slices: tuple[str, ...] = ()
    slice_fixes: tuple[str, ...] = ()
    batch_reductions: tuple[str, ...] = ()
    on_data: bool = False


@dataclass(frozen=True)
class RangeRecord:
    """One crossentropy output's values over the data: [lo, hi] of the finite values, how many lie
    outside [0, 1] of `count`, the largest |row sum - 1| (row_dev, rows of more than one value), and
    the loss as Keras computes it (keras) and with from_logits flipped or taken literally (flipped);
    those two are None when the reference could not compute them."""

    lo: float
    hi: float
    outside: int
    count: int
    row_dev: float
    keras: float | None
    flipped: float | None

    @property
    def probabilities(self) -> bool:
        return self.count > 0 and self.outside == 0

    @property
    def rows_sum_to_one(self) -> bool:
        return self.probabilities and self.row_dev < 1e-3


@dataclass(frozen=True)
class OutputLossRecord:
    """One output with a compiled loss: the loss (kind, label, name, reduction, weight, from_logits,
    label_smoothing), the output (shape with None for the batch axis, final activation and its layer,
    feature axis and why), mismatched_axis (the feature axis when the loss reduces over another one),
    and what was measured on it: rank (None: the loss could not be probed), ranges (crossentropies,
    with data), loss (this output's loss on the data, as evaluate reports it); per_sample_loss and
    per_sample_axes: for a built-in that gives one value per batch (Dice/Tversky with axis=None), the
    same loss with axis=per_sample_axes (one value per sample) on the data, averaged as Keras does."""

    name: str
    index: int
    kind: str
    label: str
    loss_name: str
    reduction: str
    weight: float
    shape: tuple[int | None, ...]
    activation: str | None
    activation_layer: str | None
    channels_axis: int | None
    channels_reason: str
    from_logits: bool
    label_smoothing: float
    mismatched_axis: int | None = None
    rank: RankRecord | None = None
    ranges: RangeRecord | None = None
    loss: float | None = None
    per_sample_loss: float | None = None
    per_sample_axes: tuple[int, ...] | None = None


@dataclass(frozen=True)
class NonFiniteSite:
    """Where NaN/Inf was found.

    place: "weight" (name: the variable's path, layer: its layer), "input" | "target" |
    "sample_weight" (name: the array's key), "pipeline" (name: e.g. "input 'x'"), "layer" (layer: the
    first layer whose output is non-finite), "output" | "loss" (name: the output), "penalties".
    sample: first sample concerned; position: within the sample; count: non-finite values; kind:
    "NaN" | "Inf"; batch: (start, stop) of the first non-finite batch where located there."""

    place: str
    name: str | None = None
    layer: str | None = None
    sample: int | None = None
    position: tuple[int, ...] = ()
    count: int | None = None
    kind: str | None = None
    batch: tuple[int, int] | None = None


@dataclass(frozen=True)
class BatchSizeRecord:
    """The reported loss at the configured batch size and at another one, on the same samples (the
    first `samples`, None: all); per_output: output -> (value at batch_size, at other_batch_size)."""

    batch_size: int
    other_batch_size: int
    value: float
    other_value: float
    per_output: Mapping[str, tuple[float, float]] = field(default_factory=_empty)
    samples: int | None = None

    @property
    def ratio(self) -> float:
        return self.other_value / self.value if self.value else float("nan")

    def as_section(self) -> dict[str, Any]:
        """The `batch_size_probe` entry of the reduction_trace section."""
        return {"batch_sizes": [self.batch_size, self.other_batch_size], "values": [self.value, self.other_value],
                "samples": self.samples,
                "ratio": self.ratio,
                "per_output": {o: {"values": list(v), "ratio": v[1] / v[0] if v[0] else None}
                               for o, v in self.per_output.items()}}


@dataclass(frozen=True)
class LossFnMeasurements:
    """The loss-function area of one run.

    outputs: output name -> OutputLossRecord, in output order (outputs with a loss only).
    non_finite_weights: the first non-finite variable of each layer.
    non_finite: where NaN/Inf sits in the data or the model's pass over it (None: not measured, no
      data or non-finite weights).
    batch_size: the batch-size rerun (None: not measured). masked: outputs that carried a Keras mask;
    weighted: the data has sample weights.
    errors: measurements that could not run, one line each (the check_notes section).
    reduction_trace: the reduction_trace section (None: not measured)."""

    outputs: Mapping[str, OutputLossRecord] = field(default_factory=_empty)
    non_finite_weights: tuple[NonFiniteSite, ...] = ()
    non_finite: tuple[NonFiniteSite, ...] | None = None
    batch_size: BatchSizeRecord | None = None
    masked: frozenset[str] = frozenset()
    weighted: bool = False
    errors: tuple[str, ...] = ()
    reduction_trace: Mapping[str, Any] | None = None
