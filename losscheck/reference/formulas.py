"""Per-element loss formulas of keras.losses, in float64 numpy.

Each function takes y_true t and y_pred p (already rank-matched as Keras's LossFunctionWrapper
does) and returns the values Keras hands to its reduction: the input shape minus the axis the
loss reduces over. EPS = keras.backend.epsilon() = 1e-7.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

EPS = 1e-7


def _softplus(x: np.ndarray) -> np.ndarray:
    return np.logaddexp(0.0, x)


def _log_softmax(z: np.ndarray, axis: int) -> np.ndarray:
    z = z - np.max(z, axis=axis, keepdims=True)
    return z - np.log(np.sum(np.exp(z), axis=axis, keepdims=True))


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


def kl_divergence(t, p, **_):
    """sum(t' log(t'/p'), axis=-1), t', p' = clip(., eps, 1)."""
    t = np.clip(t, EPS, 1.0)
    p = np.clip(p, EPS, 1.0)
    return np.sum(t * np.log(t / p), axis=-1)


def poisson(t, p, **_):
    """mean(p - t log(p + eps), axis=-1)."""
    return np.mean(p - t * np.log(p + EPS), axis=-1)


def cosine_similarity(t, p, axis: int = -1, **_):
    """-sum(t_hat * p_hat, axis), x_hat = x * min(1/sqrt(sum x^2), 1/eps) ... as keras l2_normalize."""

    def l2n(x):
        sq = np.sum(np.square(x), axis=axis, keepdims=True)
        return x / np.sqrt(np.maximum(sq, 1e-12))

    return -np.sum(l2n(t) * l2n(p), axis=axis)


def binary_crossentropy(t, p, from_logits=False, label_smoothing=0.0, axis=-1, logits=None, **_):
    """mean over `axis` of -(t log p + (1-t) log(1-p)); p clipped to [eps, 1-eps] unless logits
    are used (from_logits, or the cached pre-activation of a sigmoid output)."""
    if label_smoothing:
        t = t * (1.0 - label_smoothing) + 0.5 * label_smoothing
    z = p if from_logits else logits
    if z is not None:
        elem = np.maximum(z, 0) - z * t + np.log1p(np.exp(-np.abs(z)))
    else:
        q = np.clip(p, EPS, 1.0 - EPS)
        elem = -(t * np.log(q) + (1.0 - t) * np.log(1.0 - q))
    return np.mean(elem, axis=axis)


def binary_focal_crossentropy(
    t, p, apply_class_balancing=False, alpha=0.25, gamma=2.0, from_logits=False, label_smoothing=0.0,
    axis=-1, logits=None, **_,
):
    """mean over axis of bce * (1 - p_t)^gamma [* (alpha t + (1-alpha)(1-t))]."""
    z = p if from_logits else logits
    prob = 1.0 / (1.0 + np.exp(-z)) if z is not None else p
    t_s = t * (1.0 - label_smoothing) + 0.5 * label_smoothing if label_smoothing else t
    if z is not None:
        bce = np.maximum(z, 0) - z * t_s + np.log1p(np.exp(-np.abs(z)))
    else:
        q = np.clip(p, EPS, 1.0 - EPS)
        bce = -(t_s * np.log(q) + (1.0 - t_s) * np.log(1.0 - q))
    p_t = t * prob + (1.0 - t) * (1.0 - prob)
    focal = np.power(1.0 - p_t, gamma) * bce
    if apply_class_balancing:
        focal = (alpha * t + (1.0 - alpha) * (1.0 - t)) * focal
    return np.mean(focal, axis=axis)


def categorical_crossentropy(t, p, from_logits=False, label_smoothing=0.0, axis=-1, logits=None, **_):
    """-sum(t log q, axis): q = softmax(logits) in log space, or clip(p / sum p, eps, 1-eps)."""
    if label_smoothing:
        k = t.shape[axis]
        t = t * (1.0 - label_smoothing) + label_smoothing / k
    z = p if from_logits else logits
    if z is not None:
        return -np.sum(t * _log_softmax(z, axis), axis=axis)
    q = p / np.sum(p, axis=axis, keepdims=True)
    q = np.clip(q, EPS, 1.0 - EPS)
    return -np.sum(t * np.log(q), axis=axis)


def sparse_categorical_crossentropy(t, p, from_logits=False, ignore_class=None, axis=-1, logits=None, **_):
    """-log q[label]; q = softmax(logits), or softmax(log(clip(p))) (renormalised after clipping).
    t of shape (..., 1) is squeezed. ignore_class entries give 0 (the mask is handled by reduction)."""
    t = np.asarray(t)
    if t.ndim == p.ndim and t.shape[-1] == 1:
        t = t[..., 0]
    labels = t.astype(np.int64)
    valid = np.ones(labels.shape, dtype=bool)
    if ignore_class is not None:
        valid = labels != ignore_class
        labels = np.where(valid, labels, 0)
    z = p if from_logits else logits
    logq = _log_softmax(z, -1) if z is not None else _log_softmax(np.log(np.clip(p, EPS, 1.0 - EPS)), -1)
    out = -np.take_along_axis(logq, labels[..., None], axis=-1)[..., 0]
    return np.where(valid, out, 0.0)


FORMULAS: dict[str, Callable[..., np.ndarray]] = {
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
    "sparse_categorical_crossentropy": sparse_categorical_crossentropy,
}


def supported(kind: str) -> bool:
    return kind in FORMULAS


def elementwise(kind: str, t: np.ndarray, p: np.ndarray, options: dict[str, Any], logits=None) -> np.ndarray:
    """Values of `kind` before Keras's reduction (float64)."""
    fn = FORMULAS[kind]
    return fn(np.asarray(t, np.float64), np.asarray(p, np.float64), logits=logits, **dict(options))
