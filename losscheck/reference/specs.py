"""LossSpec: a keras-free description of one output's compiled loss."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

#: Losses whose TensorFlow implementation silently uses the cached pre-activation logits of a
#: softmax/sigmoid output when from_logits=False (keras/src/backend/tensorflow/nn.py).
LOGITS_SHORTCUT_KINDS = frozenset(
    {"binary_crossentropy", "categorical_crossentropy", "sparse_categorical_crossentropy", "binary_focal_crossentropy"}
)

#: Losses that average (or sum) over the last axis of each element: values keep every other axis.
ELEMENTWISE_LAST_AXIS_MEAN = frozenset(
    {
        "mean_squared_error",
        "mean_absolute_error",
        "mean_absolute_percentage_error",
        "mean_squared_logarithmic_error",
        "huber",
        "log_cosh",
        "binary_crossentropy",
        "binary_focal_crossentropy",
        "poisson",
        "hinge",
        "squared_hinge",
    }
)


@dataclass(frozen=True)
class LossSpec:
    """One output's loss as Keras will run it.

    kind: canonical Keras function name ("mean_squared_error", "binary_crossentropy", ...) or
          "custom" (values computed by the user's function are passed in).
    reduction: "sum_over_batch_size" | "mean" | "sum" | "mean_with_sample_weight" | "none".
    options: the loss's own arguments (from_logits, label_smoothing, axis, delta, alpha, gamma, ...).
    display: what the user wrote, for reports.
    """

    kind: str
    reduction: str = "sum_over_batch_size"
    options: Mapping[str, Any] = field(default_factory=dict)
    display: str = ""

    def option(self, name: str, default: Any = None) -> Any:
        return self.options.get(name, default)

    @property
    def label(self) -> str:
        return self.display or self.kind
