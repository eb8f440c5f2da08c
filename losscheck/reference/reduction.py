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
    """Whether Keras's TF backend computes this loss from the cached pre-activation `logits`.

    `logits` must be what the probe found on the output tensor the loss receives: `_keras_logits`
    (any Keras softmax/sigmoid), or the input of a Softmax op (CCE/SCCE) / Sigmoid op (BCE) for graph
    tensors, and only when the output already has the loss's dtype (a float16 output is cast, which
    makes a new tensor). Given that, `_get_logits` uses them, whatever `from_logits` says, unless the
    tensor is replaced before the backend op sees it:
      - LossFunctionWrapper's rank matching squeezes y_pred (e.g. (B,T,1) against (B,T) targets);
      - SCCE with ignore_class rebuilds y_pred with ops.where;
      - BinaryFocal with from_logits applies ops.sigmoid to y_pred, so y_pred itself are the logits;
      - CategoricalFocal never calls a backend crossentropy.
    """
    if logits is None or spec.kind not in LOGITS_SHORTCUT_KINDS:
        return False
    if spec.kind == "binary_focal_crossentropy" and spec.option("from_logits", False):
        return False
    if spec.kind == "sparse_categorical_crossentropy" and spec.option("ignore_class") is not None:
        return False
    t, p = match_rank(np.asarray(y_true), np.asarray(y_pred))
    return p.shape == np.shape(y_pred) and np.shape(logits) == np.shape(y_pred)


def _as_loss_dtype(x: np.ndarray, dtype: str = "float32") -> np.ndarray:
    """Keras converts y_true / y_pred / sample_weight to the loss dtype first (float32 by default):
    round there, then compute in float64."""
    arr = np.asarray(x)
    if arr.dtype == np.bool_ or np.issubdtype(arr.dtype, np.number):
        return arr.astype(dtype).astype(np.float64)
    return arr.astype(np.float64)


def loss_values_and_mask(
    spec: LossSpec,
    y_true: np.ndarray,
    y_pred: np.ndarray,
    logits: np.ndarray | None = None,
    *,
    logits_mode: str = "keras",
) -> tuple[np.ndarray, np.ndarray | None]:
    """Per-element values of a built-in loss after LossFunctionWrapper's rank matching, and the mask
    the loss sets itself (SCCE ignore_class, Circle) or None.

    logits_mode: "keras" — logits exactly where Keras uses them (see uses_logits); "never" — from the
    clipped probabilities (what keras.losses gives on predict() output); "unclipped" — the textbook
    formula without clipping (from the logits when the output has any, else log of the raw
    probabilities, which may be infinite).
    """
    dtype = spec.dtype
    t = _as_loss_dtype(y_true, dtype)
    p = _as_loss_dtype(y_pred, dtype)
    use = logits_mode == "keras" and uses_logits(spec, t, p, logits)
    clip = True
    if logits_mode == "unclipped":
        clip = False
        use = logits is not None and spec.kind in LOGITS_SHORTCUT_KINDS and np.shape(logits) == np.shape(y_pred)
        if spec.kind == "binary_focal_crossentropy" and spec.option("from_logits", False):
            use = False
    t0 = t
    t, p = match_rank(t0, p)
    lg = None
    if use:
        lg = match_rank(t0, np.asarray(logits, np.float64))[1]  # squeezed like y_pred (unclipped mode)
        if lg.shape != p.shape:
            lg = None
    options = dict(spec.options)
    return formulas.elementwise(spec.kind, t, p, options, logits=lg, clip=clip)


def loss_values(
    spec: LossSpec, y_true: np.ndarray, y_pred: np.ndarray, logits: np.ndarray | None = None
) -> np.ndarray:
    """Per-element values of a built-in loss, after LossFunctionWrapper's rank matching."""
    return loss_values_and_mask(spec, y_true, y_pred, logits)[0]


def merge_masks(a: np.ndarray | None, b: np.ndarray | None) -> np.ndarray | None:
    """a & b as booleans; None when both are None (no mask), the other when one is None."""
    if a is None:
        return None if b is None else np.asarray(b, bool)
    if b is None:
        return np.asarray(a, bool)
    return np.asarray(a, bool) & np.asarray(b, bool)


def output_batch_loss(
    spec: LossSpec,
    y_true: np.ndarray,
    y_pred: np.ndarray,
    *,
    sample_weight: np.ndarray | None = None,
    mask: np.ndarray | None = None,
    logits: np.ndarray | None = None,
    values: np.ndarray | None = None,
    logits_mode: str = "keras",
    loss_mask: bool = True,
) -> float:
    """One output's loss on one batch, as Keras's loss tracker sees it.

    `values`: per-element values already computed (custom losses: their own call(), whose mask the
    caller merges into `mask`); otherwise the built-in formula of `spec.kind` is applied to
    y_true / y_pred (or the logits where Keras uses them) and its own mask merged with `mask`.
    `loss_mask=False` drops the loss's own mask (to measure what masking changes).
    """
    if values is None:
        values, own = loss_values_and_mask(spec, y_true, y_pred, logits, logits_mode=logits_mode)
        if loss_mask:
            mask = merge_masks(mask, own)
    w = None if sample_weight is None else _as_loss_dtype(sample_weight, spec.dtype)
    return tracked_value(reduce_weighted(values, w, mask, spec.reduction))


@dataclass
class EpochMean:
    """Keras's metrics.Mean with weight n_b: sum_b n_b v_b / sum_b n_b."""

    total: float = 0.0
    count: float = 0.0

    def add(self, value: float, n: int) -> None:
        """Add one batch: its value weighted by its n samples."""
        self.total += float(value) * n
        self.count += n

    @property
    def value(self) -> float:
        """sum_b n_b v_b / sum_b n_b (0.0 before any batch)."""
        return self.total / self.count if self.count else 0.0


def prefix_mean(batches: list[tuple[int, float]], samples: int) -> float:
    """EpochMean over the leading batches (n_b, v_b) that cover the first `samples` samples."""
    mean = EpochMean()
    for n, value in batches:
        if mean.count >= samples:
            break
        mean.add(value, n)
    return mean.value
