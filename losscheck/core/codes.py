"""Severities and the one finding-code registry: each code's default severity, what it explains and
what its magnitude is.

Pure Python: no TensorFlow, no printing. The registry is the single source for the docs table (docs/findings.md),
--select/--ignore validation, default severities and each finding's magnitude_kind.
"""

from __future__ import annotations

import enum
from typing import NamedTuple


class Severity(enum.IntEnum):
    """How serious a finding is: info < warning < error (compared with --fail-on)."""
    INFO = 1
    WARNING = 2
    ERROR = 3

    def __str__(self) -> str:
        return self.name.lower()

    @classmethod
    def parse(cls, text: str) -> Severity:
        """The severity named by `text` (case-insensitive: info, warning, error)."""
        return cls[text.upper()]


class Code(NamedTuple):
    """One finding code: its default severity, what it explains, and what its magnitude is: "gap" (a
    difference of two losses, in loss units), "ratio" (one quantity over another), "count" (how many of
    something) or "floor" (a lower bound of the loss); None for codes that never carry a magnitude."""

    severity: Severity
    meaning: str
    magnitude_kind: str | None


#: code -> Code. Order is the order of docs/findings.md.
CODES: dict[str, Code] = {
    "weight-update": Code(
        Severity.INFO,
        "fit's figure averages pre-update losses while weights change during the epoch",
        "gap",
    ),
    "dropout": Code(Severity.INFO, "Dropout-family layers are active only in training", "gap"),
    "batchnorm-batch-stats": Code(
        Severity.WARNING,
        "BatchNormalization normalizes with batch statistics in training, moving statistics in inference",
        "gap",
    ),
    "noise-layer": Code(
        Severity.INFO,
        "GaussianNoise / GaussianDropout / AlphaDropout or another layer with a `training` behaviour",
        "gap",
    ),
    "interaction": Code(
        Severity.INFO,
        "training-mode layer families move the loss together by more than the sum of their separate effects",
        "gap",
    ),
    "regularization": Code(
        Severity.INFO,
        "penalties (`model.losses`) are part of Keras's total but not of a numpy recomputation",
        "gap",
    ),
    "class-weight": Code(Severity.INFO, "`class_weight` weights fit's loss only", "gap"),
    "sample-weight": Code(Severity.INFO, "how sample weights enter and normalize the loss", "gap"),
    "mask": Code(
        Severity.INFO,
        "masked elements are excluded and the mean is taken over unmasked ones, per batch",
        "gap",
    ),
    "partial-batch": Code(
        Severity.WARNING,
        "a smaller last batch changes a per-batch average (e.g. Keras's per-output loss logs)",
        "gap",
    ),
    "loss-rank": Code(
        Severity.ERROR,
        "a loss function returns the wrong rank (a scalar, or a tensor that lost the batch axis)",
        "ratio",
    ),
    "batch-size-dependence": Code(
        Severity.WARNING,
        'the reported loss changes with batch size (e.g. `reduction="sum"`)',
        "ratio",
    ),
    "channels-first-axis": Code(
        Severity.WARNING,
        "an element-wise loss averages over the last axis, which is not the feature axis",
        None,
    ),
    "from-logits-mismatch": Code(
        Severity.ERROR,
        "probabilities fed to a `from_logits=True` loss, or logits to a `from_logits=False` one",
        "gap",
    ),
    "logits-shortcut": Code(
        Severity.INFO,
        "TensorFlow computes crossentropy from the cached logits; numpy on `predict()` clips at epsilon",
        "gap",
    ),
    "probability-clipping": Code(Severity.INFO, "crossentropy clips probabilities to [eps, 1-eps]", "gap"),
    "label-smoothing": Code(Severity.INFO, "smoothed targets put a floor under the loss", "floor"),
    "mixed-precision": Code(Severity.INFO, "the loss was computed in float16/bfloat16", "gap"),
    "legacy-keras": Code(
        Severity.INFO,
        "the file was saved by tf.keras 2.x, whose loss semantics differ where noted",
        None,
    ),
    "custom-step": Code(
        Severity.INFO,
        "the model overrides train_step / test_step / compute_loss / compute_metrics or has no compiled loss: which "
        "figures run its own code, and which are left out",
        None,
    ),
    "non-finite": Code(Severity.ERROR, "NaN or Inf in inputs, outputs or loss, with where", "count"),
    "nonfinite-in-training": Code(
        Severity.ERROR,
        "the fit probe's training turned non-finite: the first such step, its samples, where in the step "
        "(input, forward, loss, gradient, update), the layer or variable, and the usual causes",
        None,
    ),
    "class-dilution": Code(
        Severity.WARNING,
        "a class the model gets wrong contributes little to the mean loss",
        "ratio",
    ),
    "unexplained": Code(Severity.ERROR, "a gap above `--rtol` that no cause accounts for, with its size", "gap"),
    "generalization-gap": Code(
        Severity.INFO,
        "the same weights give a different loss on the training and the validation data (`evaluate` vs `evaluate_val`)",
        "gap",
    ),
    "history-mismatch": Code(
        Severity.WARNING,
        "no epoch of the `--history` file logged the loss these weights give, with the likely reason",
        None,
    ),
    "shuffled-data": Code(
        Severity.INFO,
        "the data pipeline gives a different order on each pass, so the figures average differently composed batches",
        None,
    ),
    "metric-vs-loss": Code(
        Severity.INFO,
        "a metric with the loss's name differs from the loss (penalties, sample weights, loss weights, masks)",
        "gap",
    ),
    "metric-batch-mean": Code(
        Severity.INFO,
        "a metric function returns one value per batch: Keras averages batch values, not the dataset value",
        "gap",
    ),
    "metric-threshold": Code(
        Severity.WARNING,
        "a metric's threshold does not fit the output's range (0.5 on logits or tanh values, 0.0 on probabilities)",
        "gap",
    ),
    "metric-class-ids": Code(
        Severity.WARNING,
        "a metric that reads class ids (IoU, MeanIoU) is given probabilities or scores, which it truncates to integers",
        "gap",
    ),
    "target-shape": Code(
        Severity.INFO,
        "targets Keras reshapes or broadcasts: (n,) vs (n, 1) in numpy, class indices vs one-hot outputs",
        "gap",
    ),
    "target-range": Code(
        Severity.WARNING,
        "targets outside the loss's domain ([0, 1], non-negative, rows summing to 1)",
        "count",
    ),
    "backend-difference": Code(
        Severity.INFO,
        "`evaluate` or the one-epoch fit differs on another Keras backend (`--parity backends`): logits shortcut, "
        "add_loss, op numerics; for fit the training step (random layers, BatchNormalization, optimizer update)",
        "gap",
    ),
    "xla-difference": Code(Severity.INFO, "`evaluate` differs with `jit_compile` on and off (`--parity jit`)", "gap"),
    "precision-difference": Code(
        Severity.INFO,
        "`evaluate` of the mixed-precision model differs from a float32 copy (`--parity float32`)",
        "gap",
    ),
    "distribution-scaling": Code(
        Severity.WARNING,
        "under `--distribute` the loss differs from one device: a custom loss divides by a batch size itself",
        "gap",
    ),
    "uneven-shards": Code(
        Severity.ERROR,
        "under `--distribute multi-process` the processes would get unequal steps or batches (one would wait "
        "forever); found before any pass",
        "count",
    ),
    "replica-aggregation": Code(
        Severity.WARNING,
        "Keras's multi-process figure differs from one process: the framework's reduction, not the user's loss",
        "gap",
    ),
    "worker-disagreement": Code(
        Severity.ERROR,
        "the processes of a multi-process run read different data or report different figures",
        "gap",
    ),
}
