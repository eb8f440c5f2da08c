"""Independent numpy recomputation of Keras's compiled metrics (keras/src/metrics), over a whole dataset.

Never imports keras or tensorflow. A MetricSpec names what to recompute:
  kind "fn:<name>"    a MeanMetricWrapper around Keras's function <name> (accuracy family, cosine
                      similarity, correlations from keras.metrics; every loss function from keras.losses,
                      computed by reference.formulas): per-sample values v_i, then
                      result = sum_i w_i v_i / sum_i w_i (w = sample_weight * mask, 1 without);
                      a function that returns one value per batch counts as one sample per batch.
  kind "<ClassName>"  a stateful built-in (Precision, Recall, AUC, TruePositives..., PrecisionAtRecall...,
                      IoU family, FBetaScore/F1Score, R2Score, RootMeanSquaredError, Mean/Sum): its
                      confusion counts / sums accumulate over every batch, the result is computed once.
`accumulator(spec)` gives an object with update(y_true, y_pred, sample_weight, mask) and result();
None when the kind is not recomputed.
"""

from __future__ import annotations

from typing import Any

from losscheck.reference import formulas
from losscheck.reference.metric_states import (
    ConfusionAccumulator,
    FBetaAccumulator,
    IoUAccumulator,
    R2Accumulator,
)
from losscheck.reference.metric_values import (
    METRIC_FUNCTIONS,
    MeanAccumulator,
    MetricSpec,
    RootMeanSquared,
    metric_values,
)

CONFUSION_KINDS = frozenset({"Precision", "Recall", "TruePositives", "FalsePositives", "TrueNegatives",
                             "FalseNegatives", "AUC", "PrecisionAtRecall", "RecallAtPrecision",
                             "SensitivityAtSpecificity", "SpecificityAtSensitivity"})
IOU_KINDS = frozenset({"IoU", "MeanIoU", "BinaryIoU", "OneHotIoU", "OneHotMeanIoU"})
#: metrics that read predictions as class ids unless built with sparse_y_pred=False (floats truncated)
CLASS_ID_KINDS = frozenset({"IoU", "MeanIoU"})
#: metrics compared against a threshold or an argmax: they read predictions as probabilities (or scores)
THRESHOLD_KINDS = frozenset({"fn:binary_accuracy", "Precision", "Recall", "TruePositives", "FalsePositives",
                             "TrueNegatives", "FalseNegatives", "AUC", "PrecisionAtRecall", "RecallAtPrecision",
                             "SensitivityAtSpecificity", "SpecificityAtSensitivity", "BinaryIoU", "FBetaScore",
                             "F1Score"})


def supported(kind: str) -> bool:
    """True when losscheck can recompute the metric `kind` in numpy."""
    if kind.startswith("fn:"):
        return kind[3:] in METRIC_FUNCTIONS
    if kind.startswith("loss:"):
        return formulas.supported(kind[5:]) and kind[5:] not in ("ctc", "circle")
    return kind in CONFUSION_KINDS | IOU_KINDS | {"FBetaScore", "F1Score", "R2Score", "RootMeanSquaredError"}


def accumulator(spec: MetricSpec) -> Any | None:
    """A fresh accumulator for `spec`, or None when losscheck does not recompute that kind."""
    if not supported(spec.kind):
        return None
    k = spec.kind
    if k.startswith(("fn:", "loss:")):
        opts = dict(spec.options)
        return MeanAccumulator(lambda t, p, lg: metric_values(k, t, p, opts, lg))
    if k in CONFUSION_KINDS:
        return ConfusionAccumulator(spec)
    if k in IOU_KINDS:
        return IoUAccumulator(spec)
    if k in ("FBetaScore", "F1Score"):
        return FBetaAccumulator(spec)
    if k == "R2Score":
        return R2Accumulator(spec)
    if k == "RootMeanSquaredError":
        return RootMeanSquared()
    return None
