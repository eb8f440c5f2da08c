"""Keras's wrapping around a loss formula, in numpy: rank matching, mask, sample weights, reduction,
and the batch-size-weighted epoch mean.

Formulas (keras/src/losses/loss.py):
  mask merge (sum_over_batch_size/mean): w' = w * m * size(m)/sum(m)   (0 where sum(m) == 0)
  mask merge (sum/mean_with_sample_weight): w' = w * m
  sum_over_batch_size, mean:  sum(v * w') / size(v)
  sum:                        sum(v * w')
  mean_with_sample_weight:    sum(v * w') / sum(w')  (w' at its own rank), size(v) without weights
  none:                       mean(v * w') is what the loss tracker records
Scalar values (shape ()) are returned as they are, times w (a "reduction" Keras skips).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from losscheck.reference import formulas
from losscheck.reference.specs import LOGITS_SHORTCUT_KINDS, LossSpec


def match_rank(x1: np.ndarray, x2: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """keras squeeze_or_expand_to_same_rank: when ranks differ by one and the higher-rank array's
    last dim is 1, expand a rank-1 partner, else squeeze the higher-rank one."""
    r1, r2 = x1.ndim, x2.ndim
    if r1 == r2 + 1 and x1.shape[-1] == 1:
        if r2 == 1:
            x2 = x2[..., None]
        else:
            x1 = x1[..., 0]
    elif r2 == r1 + 1 and x2.shape[-1] == 1:
        if r1 == 1:
            x1 = x1[..., None]
        else:
            x2 = x2[..., 0]
    return x1, x2


def _nan_safe_div(a: float, b: float) -> float:
    return 0.0 if b == 0 else a / b


def reduce_weighted(
    values: np.ndarray,
    sample_weight: np.ndarray | None = None,
    mask: np.ndarray | None = None,
    reduction: str = "sum_over_batch_size",
) -> float | np.ndarray:
    """Keras reduce_weighted_values on float64 numpy arrays; returns the reduced value."""
    values = np.asarray(values, np.float64)
    w = None if sample_weight is None else np.asarray(sample_weight, np.float64)
    if mask is not None:
        m = np.asarray(mask).astype(bool)
        if reduction in ("mean", "sum_over_batch_size"):
            valid = float(m.sum())
            scale = _nan_safe_div(float(m.size), valid)
            fmask = np.where(m, scale, 0.0)
        else:
            fmask = m.astype(np.float64)
        if w is not None:
            fmask, w = match_rank(fmask, w)
            w = w * fmask
        else:
            w = fmask
    if w is not None:
        values, w = match_rank(values, w)
        values = values * w
    if reduction in ("none", None) or values.shape == () or values.shape == (0,):
        return values  # unreduced; the tracker averages a non-scalar
    total = float(np.sum(values))
    if reduction == "sum":
        return total
    if reduction == "mean_with_sample_weight" and w is not None:
        return _nan_safe_div(total, float(np.sum(w)))
    return _nan_safe_div(total, float(values.size))


def tracked_value(reduced: float | np.ndarray) -> float:
    """What Keras's loss tracker records: a non-scalar ("none" reduction) is averaged."""
    arr = np.asarray(reduced, np.float64)
    return float(arr) if arr.shape == () else float(np.mean(arr))


def uses_logits(spec: LossSpec, y_true: np.ndarray, y_pred: np.ndarray, logits: np.ndarray | None) -> bool:
    """Whether Keras's TF backend computes this loss from the cached logits: a crossentropy with
    from_logits=False on a softmax/sigmoid output whose tensor survives rank matching unchanged."""
    if logits is None or spec.kind not in LOGITS_SHORTCUT_KINDS or spec.option("from_logits", False):
        return False
    if spec.kind == "sparse_categorical_crossentropy":
        return True  # y_pred is never squeezed against integer labels of rank-1 less
    t, p = match_rank(np.asarray(y_true), np.asarray(y_pred))
    return p.shape == np.shape(y_pred)


def loss_values(
    spec: LossSpec, y_true: np.ndarray, y_pred: np.ndarray, logits: np.ndarray | None = None
) -> np.ndarray:
    """Per-element values of a built-in loss, after LossFunctionWrapper's rank matching."""
    y_true = np.asarray(y_true, np.float64)
    y_pred = np.asarray(y_pred, np.float64)
    use = uses_logits(spec, y_true, y_pred, logits)
    if spec.kind == "sparse_categorical_crossentropy":
        t, p = y_true, y_pred
    else:
        t, p = match_rank(y_true, y_pred)
    lg = np.asarray(logits, np.float64) if use else None
    return formulas.elementwise(spec.kind, t, p, dict(spec.options), logits=lg)


def output_batch_loss(
    spec: LossSpec,
    y_true: np.ndarray,
    y_pred: np.ndarray,
    *,
    sample_weight: np.ndarray | None = None,
    mask: np.ndarray | None = None,
    logits: np.ndarray | None = None,
    values: np.ndarray | None = None,
) -> float:
    """One output's loss on one batch, as Keras's loss tracker sees it.

    `values`: per-element values already computed (custom function losses); otherwise the built-in
    formula of `spec.kind` is applied to y_true / y_pred (or the logits where Keras uses them).
    """
    if values is None:
        values = loss_values(spec, y_true, y_pred, logits)
    if spec.kind == "sparse_categorical_crossentropy" and spec.option("ignore_class") is not None:
        t = np.asarray(y_true)
        if t.ndim == np.ndim(y_pred) and t.shape[-1] == 1:
            t = t[..., 0]
        valid = t != spec.option("ignore_class")
        mask = valid if mask is None else (np.asarray(mask, bool) & valid)
    return tracked_value(reduce_weighted(values, sample_weight, mask, spec.reduction))


@dataclass
class EpochMean:
    """Keras's metrics.Mean with weight n_b: sum_b n_b v_b / sum_b n_b."""

    total: float = 0.0
    count: float = 0.0

    def add(self, value: float, n: int) -> None:
        self.total += float(value) * n
        self.count += n

    @property
    def value(self) -> float:
        return self.total / self.count if self.count else 0.0
