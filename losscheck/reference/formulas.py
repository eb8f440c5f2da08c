"""Per-element loss formulas of keras.losses (keras/src/losses/losses.py), in float64 numpy.

Each function takes y_true t and y_pred p (already rank-matched as Keras's LossFunctionWrapper does)
and returns the values Keras hands to its reduction: the input shape minus the axis the loss reduces
over (Dice/Tversky with axis=None: a scalar). A function may instead return (values, mask) when the
loss sets its own Keras mask (SparseCategoricalCrossentropy(ignore_class=k), Circle).

Crossentropies take `logits`: the pre-activation tensor when Keras's TF backend computes from it
(reduction.uses_logits decides), and `clip`: False for the unclipped textbook formula (used only to
measure what clipping changes; Keras always clips).

EPS = keras.backend.epsilon() = 1e-7. Keras clips in float32, so the upper bound is float32(1 - 1e-7)
= 1 - 1.19e-7; the reference uses the same bounds.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from losscheck.core.taxonomy import CROSSENTROPY_KINDS

EPS = 1e-7
LO = float(np.float32(EPS))
HI = float(np.float32(1.0 - EPS))


def _softplus(x: np.ndarray) -> np.ndarray:
    return np.logaddexp(0.0, x)


def _log_softmax(z: np.ndarray, axis: int) -> np.ndarray:
    z = z - np.max(z, axis=axis, keepdims=True)
    return z - np.log(np.sum(np.exp(z), axis=axis, keepdims=True))


def softmax(z: np.ndarray, axis: int = -1) -> np.ndarray:
    """exp(z - logsumexp(z, axis)): the probabilities of logits z along `axis`."""
    return np.exp(_log_softmax(z, axis))


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return np.exp(-np.logaddexp(0.0, -z))


def _clip(p: np.ndarray, clip: bool) -> np.ndarray:
    return np.clip(p, LO, HI) if clip else p


def _log(x: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.log(x)


def _xlogy(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """x * log(y), 0 where x == 0 (identical to Keras's product whenever y is clipped)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(x == 0, 0.0, x * np.log(y))


def _sigmoid_ce_with_logits(t: np.ndarray, z: np.ndarray) -> np.ndarray:
    """tf.nn.sigmoid_cross_entropy_with_logits: max(z, 0) - z t + log(1 + exp(-|z|))."""
    return np.maximum(z, 0.0) - z * t + np.log1p(np.exp(-np.abs(z)))


def _axis(axis: Any) -> Any:
    if isinstance(axis, list):
        return tuple(axis)
    return axis


# -- regression ---------------------------------------------------------------------------------
def mean_squared_error(t, p, **_):
    """mean((t - p)^2, axis=-1)."""
    return np.mean(np.square(p - t), axis=-1)


def mean_absolute_error(t, p, **_):
    """mean(|t - p|, axis=-1)."""
    return np.mean(np.abs(p - t), axis=-1)


def mean_absolute_percentage_error(t, p, **_):
    """100 * mean(|t - p| / max(|t|, eps), axis=-1)."""
    return 100.0 * np.mean(np.abs(t - p) / np.maximum(np.abs(t), EPS), axis=-1)


def mean_squared_logarithmic_error(t, p, **_):
    """mean((log(max(p, eps) + 1) - log(max(t, eps) + 1))^2, axis=-1)."""
    a = np.log(np.maximum(p, EPS) + 1.0)
    b = np.log(np.maximum(t, EPS) + 1.0)
    return np.mean(np.square(a - b), axis=-1)


def huber(t, p, delta: float = 1.0, **_):
    """mean(e^2/2 if |e| <= delta else delta*|e| - delta^2/2, axis=-1), e = p - t."""
    e = np.abs(p - t)
    return np.mean(np.where(e <= delta, 0.5 * e * e, delta * e - 0.5 * delta * delta), axis=-1)


def log_cosh(t, p, **_):
    """mean(e + softplus(-2e) - log 2, axis=-1), e = p - t."""
    e = p - t
    return np.mean(e + _softplus(-2.0 * e) - np.log(2.0), axis=-1)


def cosine_similarity(t, p, axis: int = -1, **_):
    """-sum(t_hat * p_hat, axis), x_hat = x * min(rsqrt(sum x^2), 1/eps) (keras ops.normalize)."""

    def l2n(x):
        sq = np.sum(np.square(x), axis=axis, keepdims=True)
        return x / np.sqrt(np.maximum(sq, EPS * EPS))

    return -np.sum(l2n(t) * l2n(p), axis=axis)


def kl_divergence(t, p, **_):
    """sum(t' log(t'/p'), axis=-1), t', p' = clip(., eps, 1)."""
    t = np.clip(t, EPS, 1.0)
    p = np.clip(p, EPS, 1.0)
    return np.sum(t * np.log(t / p), axis=-1)


def poisson(t, p, **_):
    """mean(p - t log(p + eps), axis=-1)."""
    return np.mean(p - t * _log(p + EPS), axis=-1)


# -- hinge ----------------------------------------------------------------------------------------
def _hinge_labels(t: np.ndarray) -> np.ndarray:
    """Keras converts {0,1} labels to {-1,1} only when every label in the batch is 0 or 1."""
    if np.all((t == 0) | (t == 1)):
        return 2.0 * t - 1.0
    return t


def hinge(t, p, **_):
    """mean(max(1 - t*p, 0), axis=-1)."""
    return np.mean(np.maximum(1.0 - _hinge_labels(t) * p, 0.0), axis=-1)


def squared_hinge(t, p, **_):
    """mean(max(1 - t*p, 0)^2, axis=-1)."""
    return np.mean(np.square(np.maximum(1.0 - _hinge_labels(t) * p, 0.0)), axis=-1)


def categorical_hinge(t, p, **_):
    """max(max((1 - t) * p) - sum(t * p) + 1, 0) over the last axis."""
    pos = np.sum(t * p, axis=-1)
    neg = np.max((1.0 - t) * p, axis=-1)
    return np.maximum(neg - pos + 1.0, 0.0)


# -- crossentropies -------------------------------------------------------------------------------
def binary_crossentropy(t, p, from_logits=False, label_smoothing=0.0, axis=-1, logits=None, clip=True, **_):
    """mean over `axis` of -(t log p + (1-t) log(1-p)); p clipped to [eps, 1-eps] unless logits
    are used (from_logits, or the cached pre-activation of a sigmoid/softmax output)."""
    if label_smoothing:
        t = t * (1.0 - label_smoothing) + 0.5 * label_smoothing
    z = logits if logits is not None else (p if from_logits else None)
    if z is not None:
        elem = _sigmoid_ce_with_logits(t, z)
    else:
        q = _clip(p, clip)
        elem = -(_xlogy(t, q) + _xlogy(1.0 - t, 1.0 - q))
    return np.mean(elem, axis=_axis(axis))


def binary_focal_crossentropy(
    t, p, apply_class_balancing=False, alpha=0.25, gamma=2.0, from_logits=False, label_smoothing=0.0,
    axis=-1, logits=None, clip=True, **_,
):
    """mean over axis of bce * (1 - p_t)^gamma [* (alpha t + (1-alpha)(1-t))], with the smoothed t
    everywhere (Keras smooths y_true first). from_logits: p = sigmoid(y_pred), and bce uses y_pred as
    logits (ops.sigmoid caches them); otherwise bce uses the cached logits of a sigmoid output if any."""
    if label_smoothing:
        t = t * (1.0 - label_smoothing) + 0.5 * label_smoothing
    if from_logits:
        z = p
        prob = _sigmoid(p)
    else:
        z = logits
        prob = p
    if z is not None:
        bce = _sigmoid_ce_with_logits(t, z)
    else:
        q = _clip(prob, clip)
        bce = -(_xlogy(t, q) + _xlogy(1.0 - t, 1.0 - q))
    p_t = t * prob + (1.0 - t) * (1.0 - prob)
    with np.errstate(invalid="ignore"):
        focal = np.power(1.0 - p_t, gamma) * bce
    if apply_class_balancing:
        focal = (alpha * t + (1.0 - alpha) * (1.0 - t)) * focal
    return np.mean(focal, axis=_axis(axis))


def categorical_crossentropy(t, p, from_logits=False, label_smoothing=0.0, axis=-1, logits=None, clip=True, **_):
    """-sum(t log q, axis): q = softmax(logits) in log space, or clip(p / sum p, eps, 1-eps).
    Label smoothing uses the size of the LAST axis as the number of classes (as Keras does)."""
    if label_smoothing:
        k = t.shape[-1]
        t = t * (1.0 - label_smoothing) + label_smoothing / k
    z = logits if logits is not None else (p if from_logits else None)
    if z is not None:
        return -np.sum(t * _log_softmax(z, axis), axis=axis)
    with np.errstate(divide="ignore", invalid="ignore"):
        q = p / np.sum(p, axis=axis, keepdims=True)
    q = _clip(q, clip)
    return -np.sum(_xlogy(t, q), axis=axis)


def categorical_focal_crossentropy(
    t, p, alpha=0.25, gamma=2.0, from_logits=False, label_smoothing=0.0, axis=-1, clip=True, **_
):
    """sum over axis of alpha (1 - q)^gamma (-t log q), q = clip(p / sum p, eps, 1-eps) where p is
    softmax(y_pred) with from_logits. Never uses cached logits."""
    if label_smoothing:
        k = t.shape[-1]
        t = t * (1.0 - label_smoothing) + label_smoothing / k
    if from_logits:
        p = softmax(p, axis)
    with np.errstate(divide="ignore", invalid="ignore"):
        q = p / np.sum(p, axis=axis, keepdims=True)
    q = _clip(q, clip)
    with np.errstate(invalid="ignore"):
        cce = -_xlogy(t, q)
        return np.sum(np.power(1.0 - q, gamma) * np.asarray(alpha, np.float64) * cce, axis=axis)


def sparse_categorical_crossentropy(
    t, p, from_logits=False, ignore_class=None, axis=-1, logits=None, clip=True, **_
):
    """-log q[label]; q = softmax(logits), or softmax(log(clip(p))) (renormalised after clipping).
    t of shape (..., 1) is squeezed. ignore_class: those entries give 0 and are masked out."""
    t = np.asarray(t)
    if t.ndim == p.ndim and t.shape[axis] == 1:
        t = np.squeeze(t, axis=axis)
    valid = None
    if ignore_class is not None:
        valid = t != ignore_class
        t = np.where(valid, t, 0)
        if not from_logits:
            logits = None  # ops.where on y_pred makes a new tensor: no cached logits
        p = np.where(valid[..., None], p, 0.0)
    labels = np.trunc(t).astype(np.int64)
    z = logits if logits is not None else (p if from_logits else None)
    if z is not None:
        logq = _log_softmax(z, -1)
    else:
        logq = _log_softmax(_log(_clip(p, clip)), -1)
    out = -np.take_along_axis(logq, labels[..., None], axis=-1)[..., 0]
    if valid is not None:
        return np.where(valid, out, 0.0), valid
    return out


def categorical_generalized_cross_entropy(t, p, q=0.5, **_):
    """(1 - p_true^q) / q, p_true = sum(p * one_hot(int(t), C), -1); no clipping. Labels outside
    [0, C) give a zero one-hot row (p_true = 0), as ops.one_hot does."""
    k = p.shape[-1]
    labels = np.trunc(np.asarray(t)).astype(np.int64)
    onehot = (labels[..., None] == np.arange(k)).astype(np.float64)
    p_true = np.sum(p * onehot, axis=-1)
    return (1.0 - np.power(p_true, q)) / q


# -- segmentation / metric learning -----------------------------------------------------------------
def dice(t, p, axis=None, **_):
    """1 - 2 sum(t p) / (sum t + sum p + eps) over `axis` (all axes by default: one scalar per batch)."""
    ax = _axis(axis)
    inter = np.sum(t * p, axis=ax)
    return 1.0 - 2.0 * inter / (np.sum(t, axis=ax) + np.sum(p, axis=ax) + EPS)


def tversky(t, p, alpha=0.5, beta=0.5, axis=None, **_):
    """1 - TP / (TP + alpha FP + beta FN + eps); TP = sum(t p), FP = sum((1-p) t), FN = sum(p (1-t))
    (Keras's own naming: its "fp" is sum((1 - y_pred) * y_true))."""
    ax = _axis(axis)
    inter = np.sum(t * p, axis=ax)
    fp = np.sum((1.0 - p) * t, axis=ax)
    fn = np.sum(p * (1.0 - t), axis=ax)
    return 1.0 - inter / (inter + fp * alpha + fn * beta + EPS)


def circle(t, p, gamma=80.0, margin=0.4, remove_diagonal=True, **_):
    """Circle loss over the batch's pairwise cosine distances d = max(1 - p p^T, 0):
    softplus(lse_pos(-gamma max(margin + d, 0) (margin - d)) + lse_neg(gamma max(1 + margin - d, 0)
    (1 - margin - d))), masked where the loss is 0."""
    labels = np.trunc(np.asarray(t)).astype(np.int64)
    if labels.ndim == 1:
        labels = labels.reshape(-1, 1)
    d = np.maximum(1.0 - p @ p.T, 0.0)
    pos = labels == labels.T
    neg = ~pos
    if remove_diagonal:
        pos = pos & ~np.eye(pos.shape[0], pos.shape[1], dtype=bool)
    pos_w = np.maximum((margin + d) * pos, 0.0)
    neg_w = np.maximum((1.0 + margin - d) * neg, 0.0)
    pos_wd = -1.0 * gamma * pos_w * (margin - d)
    neg_wd = gamma * neg_w * (1.0 - margin - d)
    with np.errstate(divide="ignore", invalid="ignore"):
        p_loss = _logsumexp(np.where(pos, pos_wd, -np.inf), axis=1)
        n_loss = _logsumexp(np.where(neg, neg_wd, -np.inf), axis=1)
        loss = _softplus(p_loss + n_loss)
    return loss, loss > 0


def _logsumexp(x: np.ndarray, axis: int) -> np.ndarray:
    m = np.max(x, axis=axis, keepdims=True)
    m = np.where(np.isfinite(m), m, 0.0)
    with np.errstate(divide="ignore"):
        return np.squeeze(m, axis=axis) + np.log(np.sum(np.exp(x - m), axis=axis))


def ctc(t, p, **_):
    """Connectionist temporal classification, tf.nn.ctc_loss with blank 0: labels are the first
    count(t != 0) entries of each row, logits p of shape (B, T, C) (log-softmax taken here), input
    length T. Returns -log p(labels | x) per sample (inf when no alignment exists)."""
    labels = np.trunc(np.asarray(t)).astype(np.int64)
    logp = _log_softmax(p, -1)
    out = np.empty(p.shape[0])
    for b in range(p.shape[0]):
        n = int(np.sum(labels[b] != 0))
        out[b] = _ctc_one(logp[b], labels[b, :n])
    return out


def _ctc_one(logp: np.ndarray, label: np.ndarray) -> float:
    ext = np.zeros(2 * len(label) + 1, dtype=np.int64)
    ext[1::2] = label
    s = len(ext)
    alpha = np.full(s, -np.inf)
    alpha[0] = logp[0, 0]
    if s > 1:
        alpha[1] = logp[0, ext[1]]
    skip = np.zeros(s, dtype=bool)
    skip[2:] = (ext[2:] != 0) & (ext[2:] != ext[:-2])
    for step in range(1, logp.shape[0]):
        a1 = np.full(s, -np.inf)
        a1[1:] = alpha[:-1]
        a2 = np.full(s, -np.inf)
        a2[2:] = alpha[:-2]
        a2 = np.where(skip, a2, -np.inf)
        with np.errstate(divide="ignore"):
            alpha = np.logaddexp(np.logaddexp(alpha, a1), a2) + logp[step, ext]
    tail = alpha[-1] if s == 1 else np.logaddexp(alpha[-1], alpha[-2])
    return float(-tail)


FORMULAS: dict[str, Callable[..., Any]] = {
    "mean_squared_error": mean_squared_error,
    "mean_absolute_error": mean_absolute_error,
    "mean_absolute_percentage_error": mean_absolute_percentage_error,
    "mean_squared_logarithmic_error": mean_squared_logarithmic_error,
    "huber": huber,
    "log_cosh": log_cosh,
    "hinge": hinge,
    "squared_hinge": squared_hinge,
    "categorical_hinge": categorical_hinge,
    "kl_divergence": kl_divergence,
    "poisson": poisson,
    "cosine_similarity": cosine_similarity,
    "binary_crossentropy": binary_crossentropy,
    "binary_focal_crossentropy": binary_focal_crossentropy,
    "categorical_crossentropy": categorical_crossentropy,
    "categorical_focal_crossentropy": categorical_focal_crossentropy,
    "sparse_categorical_crossentropy": sparse_categorical_crossentropy,
    "categorical_generalized_cross_entropy": categorical_generalized_cross_entropy,
    "dice": dice,
    "tversky": tversky,
    "circle": circle,
    "ctc": ctc,
}

#: Losses whose values depend on clipping probabilities to [eps, 1 - eps].
CLIPPING_KINDS = CROSSENTROPY_KINDS


def supported(kind: str) -> bool:
    """True when losscheck has a numpy formula for the built-in loss `kind`."""
    return kind in FORMULAS


def elementwise(kind: str, t: np.ndarray, p: np.ndarray, options: dict[str, Any], logits=None,
                clip: bool = True) -> tuple[np.ndarray, np.ndarray | None]:
    """(values, the loss's own mask or None) of `kind` before Keras's reduction, in float64."""
    fn = FORMULAS[kind]
    out = fn(np.asarray(t, np.float64), np.asarray(p, np.float64), logits=logits, clip=clip, **dict(options))
    if isinstance(out, tuple):
        return np.asarray(out[0], np.float64), np.asarray(out[1], bool)
    return np.asarray(out, np.float64), None
