"""The mean-wrapper metrics in numpy: `MetricSpec`, the per-sample functions of Keras's accuracy
family, cosine similarity and correlations (every loss function comes from reference.formulas), and
MeanAccumulator: result = sum_i w_i v_i / sum_i w_i (w = sample_weight * mask, 1 without). Never
imports keras or tensorflow."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from losscheck.reference import formulas
from losscheck.reference.reduction import loss_values_and_mask, match_rank
from losscheck.reference.specs import LossSpec

EPS = 1e-7
NEG_INF = -1e10


@dataclass(frozen=True)
class MetricSpec:
    """One compiled metric: kind (see reference/metrics.py) and its options (thresholds, k, from_logits, ...)."""

    kind: str
    options: Mapping[str, Any] = field(default_factory=dict)

    def option(self, name: str, default: Any = None) -> Any:
        """The option `name`, or `default` when it is absent or None."""
        value = self.options.get(name, default)
        return default if value is None else value


def _f32(x: Any) -> np.ndarray:
    return np.asarray(x).astype(np.float32)


# -- per-sample functions of the mean-wrapper metrics ------------------------------------------------
def accuracy(t, p, **_):
    """Per element: 1.0 where y_true == y_pred exactly (ranks matched as Keras matches them), else 0.0."""
    t, p = match_rank(_f32(t), _f32(p))
    return (t == p).astype(np.float64)


def binary_accuracy(t, p, threshold=0.5, **_):
    """Per element: 1.0 where y_true == (y_pred > threshold), in float32 as Keras compares, else 0.0."""
    t, p = match_rank(_f32(t), _f32(p))
    return (t == (p > np.float32(threshold)).astype(np.float32)).astype(np.float64)


def categorical_accuracy(t, p, **_):
    """Per sample: 1.0 where argmax(y_true, -1) == argmax(y_pred, -1), else 0.0."""
    t, p = np.asarray(t), np.asarray(p)
    return (np.argmax(t, axis=-1) == np.argmax(p, axis=-1)).astype(np.float64)


def sparse_categorical_accuracy(t, p, **_):
    """Per sample: 1.0 where the class index y_true == argmax(y_pred, -1), else 0.0."""
    t, p = _f32(t), np.asarray(p)
    if t.ndim == p.ndim and t.shape[-1] == 1:
        t = t[..., 0]
    out = (t == np.argmax(p, axis=-1).astype(np.float32)).astype(np.float64)
    if out.ndim > 1 and out.shape[-1] == 1:
        out = out[..., 0]
    return out


def _in_top_k(labels: np.ndarray, p: np.ndarray, k: int) -> np.ndarray:
    """tf.math.in_top_k: the target's score is among the k largest (ties count as in)."""
    p2 = p.reshape(-1, p.shape[-1]).astype(np.float32)
    lab = labels.reshape(-1).astype(np.int64)
    target = p2[np.arange(len(lab)), np.clip(lab, 0, p2.shape[-1] - 1)]
    above = np.sum(p2 > target[:, None], axis=-1)
    ok = (above < k) & (lab >= 0) & (lab < p2.shape[-1])
    return ok.reshape(labels.shape).astype(np.float64)


def top_k_categorical_accuracy(t, p, k=5, **_):
    """Per sample: 1.0 where argmax(y_true) is among the k largest scores (ties count), else 0.0."""
    return _in_top_k(np.argmax(np.asarray(t), axis=-1), np.asarray(p), int(k))


def sparse_top_k_categorical_accuracy(t, p, k=5, from_sorted_ids=False, **_):
    """Per sample: 1.0 where the class index is among the k largest scores (or the first k sorted ids), else 0.0."""
    t, p = np.asarray(t), np.asarray(p)
    if from_sorted_ids:
        flat = p.reshape(-1, p.shape[-1])[:, : int(k)]
        hit = np.any(flat == t.reshape(-1, 1), axis=1)
        return hit.reshape(t.shape).astype(np.float64)
    return _in_top_k(t.astype(np.int64), p, int(k))


def cosine_similarity(t, p, axis=-1, **_):
    """Per sample: cos(y_true, y_pred) along `axis` (the metric's sign: +1 when aligned)."""
    t, p = match_rank(np.asarray(t, np.float64), np.asarray(p, np.float64))
    return -formulas.cosine_similarity(t, p, axis=axis)


def pearson_correlation(t, p, axis=-1, **_):
    """Per sample: mean over `axis` of the standardized y_true times the standardized y_pred."""
    t, p = match_rank(np.asarray(t, np.float64), np.asarray(p, np.float64))
    tn = t - np.mean(t, axis=axis, keepdims=True)
    pn = p - np.mean(p, axis=axis, keepdims=True)
    with np.errstate(all="ignore"):
        tn = tn / np.std(tn, axis=axis, keepdims=True)
        pn = pn / np.std(pn, axis=axis, keepdims=True)
    return np.mean(tn * pn, axis=axis)


def concordance_correlation(t, p, axis=-1, **_):
    """Per sample: 2 cov(t, p) / (var t + var p + (mean t - mean p)^2 + eps) along `axis`."""
    t, p = match_rank(np.asarray(t, np.float64), np.asarray(p, np.float64))
    tm = np.mean(t, axis=axis, keepdims=True)
    pm = np.mean(p, axis=axis, keepdims=True)
    tv = np.var(t - tm, axis=axis, keepdims=True)
    pv = np.var(p - pm, axis=axis, keepdims=True)
    covar = (t - pm) * (p - pm)
    norm = tv + pv + np.square(tm - pm)
    return np.mean(2 * covar / (norm + EPS), axis=axis)


METRIC_FUNCTIONS: dict[str, Callable[..., np.ndarray]] = {
    "accuracy": accuracy,
    "binary_accuracy": binary_accuracy,
    "categorical_accuracy": categorical_accuracy,
    "sparse_categorical_accuracy": sparse_categorical_accuracy,
    "top_k_categorical_accuracy": top_k_categorical_accuracy,
    "sparse_top_k_categorical_accuracy": sparse_top_k_categorical_accuracy,
    "cosine_similarity": cosine_similarity,
    "pearson_correlation": pearson_correlation,
    "concordance_correlation": concordance_correlation,
}


def metric_values(kind: str, t: np.ndarray, p: np.ndarray, options: Mapping[str, Any],
                  logits: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray | None]:
    """Values a mean-wrapper metric hands to Mean.update_state (and its own mask, for losses that set
    one). kind: "fn:<metric function>" or "loss:<keras.losses function>"."""
    source, name = kind.split(":", 1)
    if source == "fn":
        return np.asarray(METRIC_FUNCTIONS[name](t, p, **dict(options)), np.float64), None
    spec = LossSpec(name, options=dict(options))
    return loss_values_and_mask(spec, t, p, logits)


def samplewise(values: np.ndarray, sample_weight: np.ndarray | None,
               reduce: Callable[..., np.ndarray] = np.mean) -> tuple[np.ndarray, np.ndarray | None]:
    """keras reduce_to_samplewise_values: (per-sample values, already weighted; per-sample weights)."""
    v = np.asarray(values, np.float64)
    w = None
    if sample_weight is not None:
        w = np.asarray(sample_weight, np.float64)
        v, w = match_rank(v, w)
        if v.ndim > w.ndim:
            v = reduce(v, axis=tuple(range(w.ndim, v.ndim)))
        w_b = np.broadcast_to(w, v.shape)
        v = v * w_b
        if w.ndim > 1:
            w = reduce(w_b, axis=tuple(range(1, w.ndim)))
        else:
            w = w_b
    if v.ndim > 1:
        v = reduce(v, axis=tuple(range(1, v.ndim)))
    return v, w


def _mask_weights(sample_weight: np.ndarray | None, mask: np.ndarray | None) -> np.ndarray | None:
    """losses.loss.apply_mask(..., reduction="sum"): the mask multiplies (or becomes) the weights."""
    if mask is None:
        return sample_weight
    m = np.asarray(mask).astype(np.float64)
    if sample_weight is None:
        return m
    m, w = match_rank(m, np.asarray(sample_weight, np.float64))
    return w * m


class MeanAccumulator:
    """Mean / MeanMetricWrapper: total += sum(w v), count += sum(w) (or the number of samples)."""

    def __init__(self, values_fn: Callable[..., tuple[np.ndarray, np.ndarray | None]] | None = None,
                 reduce: str = "mean") -> None:
        self.values_fn = values_fn
        self.reduce = reduce
        self.total = 0.0
        self.count = 0.0

    def add(self, values: np.ndarray, sample_weight: np.ndarray | None) -> None:
        """Add per-element `values` (reduced per sample) with their sample weights to the running total and count."""
        v, w = samplewise(values, sample_weight, np.mean if self.reduce == "mean" else np.sum)
        self.total += float(np.sum(v))
        if self.reduce == "sum":
            return
        if w is not None:
            self.count += float(np.sum(w))
        else:
            self.count += float(v.shape[0]) if v.ndim >= 1 else 1.0

    def update(self, t, p, sample_weight=None, mask=None, logits=None) -> None:
        """Add one batch: the metric's per-element values of (t, p), masked and weighted."""
        assert self.values_fn is not None
        values, own = self.values_fn(t, p, logits)
        self.add(values, _mask_weights(_mask_weights(sample_weight, mask), own))

    def result(self) -> float:
        """total / count (0.0 when empty), or the total for a sum-reduced metric."""
        if self.reduce == "sum":
            return self.total
        return self.total / self.count if self.count else 0.0


class RootMeanSquared(MeanAccumulator):
    """RootMeanSquaredError: sqrt of the weighted mean of (y_pred - y_true)^2."""
    def update(self, t, p, sample_weight=None, mask=None, logits=None) -> None:
        """Add one batch's squared errors with their sample weights."""
        t, p = match_rank(np.asarray(t, np.float64), np.asarray(p, np.float64))
        self.add(np.square(p - t), sample_weight)

    def result(self) -> float:
        """sqrt(weighted mean squared error)."""
        return float(np.sqrt(super().result()))


