"""LossSpec: a keras-free description of one output's compiled loss."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from losscheck.core.taxonomy import CROSSENTROPY_KINDS as CROSSENTROPY_KINDS
from losscheck.core.taxonomy import LAST_AXIS_MEAN_KINDS, LOGITS_OP_TYPE

#: Losses whose TensorFlow implementation silently uses the cached pre-activation logits of a
#: softmax/sigmoid output (keras/src/backend/tensorflow/nn.py `_get_logits`), whatever from_logits says.
#: The op-type check of graph tensors looks for LOGITS_OP_TYPE's op (for tensors without `_keras_logits`).
LOGITS_SHORTCUT_KINDS = frozenset(LOGITS_OP_TYPE)

#: Losses that average (or sum) over the last axis of each element: values keep every other axis.
ELEMENTWISE_LAST_AXIS_MEAN = LAST_AXIS_MEAN_KINDS


@dataclass(frozen=True)
class LossSpec:
    """One output's loss as Keras will run it.

    kind: canonical Keras function name ("mean_squared_error", "binary_crossentropy", ...) or
          "custom" (values computed by the user's function are passed in).
    reduction: "sum_over_batch_size" | "mean" | "sum" | "mean_with_sample_weight" | "none".
    options: the loss's own arguments (from_logits, label_smoothing, axis, delta, alpha, gamma, ...).
    display: what the user wrote, for reports.
    dtype: the Loss's dtype (keras.backend.floatx() unless given).
    """

    kind: str
    reduction: str = "sum_over_batch_size"
    options: Mapping[str, Any] = field(default_factory=dict)
    display: str = ""
    dtype: str = "float32"  # the loss's compute dtype: y_true, y_pred and weights are converted to it

    def option(self, name: str, default: Any = None) -> Any:
        """The loss option `name` (from_logits, label_smoothing, axis, ...), or `default`."""
        return self.options.get(name, default)

    @property
    def label(self) -> str:
        """How the loss is shown: its display name, else its kind."""
        return self.display or self.kind
