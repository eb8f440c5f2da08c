"""Exact, streaming decomposition of Keras's loss into classes and samples (numpy only, no keras).

The identity everything rests on. For one output, Keras's epoch value is
    L = (1/N) sum_b n_b L_b,     L_b = reduce(values_b, sample_weight_b, mask_b)
and every reduction Keras has (sum_over_batch_size / mean / sum / mean_with_sample_weight / none) is
linear in `values` once the weights and the mask are fixed: L_b = sum_i a_i v_i with
    a_i = w'_i / D_b    (w' = sample weight x mask factor, broadcast to the values;
                         D_b = size(values) | 1 for "sum" | sum(w') for mean_with_sample_weight).
So L = sum over every loss element of c_i v_i with c_i = n_b a_i / N: the "coefficient" of element i,
and any split of the elements (by class, by channel, by sample) splits L exactly.

Element-wise losses (BCE, MSE, ...): v_i = mean over the class axis of e_ic (sum for sum-type
losses), so L = mean_c L_c with L_c = sum_i c_i e_ic: the output loss is the mean of the channel
losses, each channel reduced exactly as Keras reduces the output.
Sample-wise losses (CCE, SCCE, ...): v_i belongs to one true class k, so L = sum_k W_k L_k with
W_k = sum_{i in k} c_i (= n_k / N without weights or masks) and L_k = sum_{i in k} c_i v_i / W_k:
the count-weighted mean of the class means.
Per sample: l_s = N sum_{i in s} c_i v_i, so L = mean_s l_s.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from losscheck.core import taxonomy
from losscheck.reference.reduction import loss_values, match_rank, reduce_weighted, tracked_value, uses_logits
from losscheck.reference.specs import LossSpec

#: Losses whose value for an element is computed over the whole class axis (one value per sample).
SAMPLEWISE_KINDS = taxonomy.SAMPLEWISE_KINDS


class NotDecomposable(Exception):
    """The loss cannot be split this way (the message says why)."""


def as_loss_dtype(sample_weight: np.ndarray | None, spec: LossSpec) -> np.ndarray | None:
    """Keras converts sample weights to the loss dtype (float32 by default) before using them."""
    if sample_weight is None:
        return None
    return np.asarray(sample_weight).astype(getattr(spec, "dtype", "float32")).astype(np.float64)


def batch_coefficients(shape: tuple[int, ...], sample_weight: np.ndarray | None, mask: np.ndarray | None,
                       reduction: str) -> np.ndarray:
    """a with the values' shape such that Keras's tracked batch loss is sum(a * values).

    Every reduction is linear in the values, L(v) = sum(v * W) / D, with W the weights after the mask
    merge and broadcasting (the reference's "none" reduction of ones) and D fixed by the weights; so
    a = W * L(ones) / sum(W), all from reference.reduce_weighted itself."""
    if len(shape) == 0:
        raise NotDecomposable("the loss function returns a scalar per batch, so there is nothing to split")
    ones = np.ones(shape, np.float64)
    weighted = np.asarray(reduce_weighted(ones, sample_weight, mask, "none"), np.float64)
    if weighted.size != ones.size:
        raise NotDecomposable(f"sample weights of shape {getattr(sample_weight, 'shape', None)} "
                              "broadcast the loss values "
                              f"{shape} to {weighted.shape}")
    whole = float(np.sum(weighted))
    if whole == 0.0:
        if np.any(weighted != 0.0):
            raise NotDecomposable("the sample weights of a batch sum to zero")
        return np.zeros(shape, np.float64)
    at_ones = tracked_value(reduce_weighted(ones, sample_weight, mask, reduction))
    return (weighted * (at_ones / whole)).reshape(shape)


def _slice(a: np.ndarray, c: int, axis: int) -> np.ndarray:
    idx = [slice(None)] * a.ndim
    idx[axis] = slice(c, c + 1)
    return a[tuple(idx)]


def channel_values(spec: LossSpec, y_true: np.ndarray, y_pred: np.ndarray, logits: np.ndarray | None,
                   values: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, str, int]:
    """Per-channel element losses e (C, *values.shape) of an element-wise loss, with the targets and
    predictions per channel (same shape), how channels combine into the values ("mean" or "sum")
    and the class axis. Checked against `values` (the loss's own per-element output)."""
    y = np.asarray(y_true, np.float64)
    p = np.asarray(y_pred, np.float64)
    lg = logits if uses_logits(spec, y, p, logits) else None
    t, q = match_rank(y, p)
    if t.shape != q.shape:
        raise NotDecomposable(f"targets {y.shape} and predictions {p.shape} do not line up per channel")
    axis = int(spec.option("axis", -1) or -1)
    axis = axis % q.ndim
    C = q.shape[axis]
    e = np.stack([loss_values(spec, _slice(t, c, axis), _slice(q, c, axis),
                              None if lg is None else _slice(np.asarray(lg, np.float64), c, axis))
                  for c in range(C)])
    v = np.asarray(values, np.float64)
    if e.shape[1:] != v.shape:
        raise NotDecomposable(f"per-channel values {e.shape[1:]} do not match the loss values {v.shape}")
    scale = max(float(np.max(np.abs(v))) if v.size else 0.0, 1e-12)
    if np.max(np.abs(e.mean(axis=0) - v), initial=0.0) <= 1e-9 * scale + 1e-12:
        combine = "mean"
    elif np.max(np.abs(e.sum(axis=0) - v), initial=0.0) <= 1e-9 * scale + 1e-12:
        combine = "sum"
    else:
        raise NotDecomposable(f"{spec.label} does not average (or sum) independent per-channel terms")
    return e, np.moveaxis(t, axis, 0), np.moveaxis(q, axis, 0), combine, axis


def class_labels(spec: LossSpec, y_true: np.ndarray, y_pred: np.ndarray, shape: tuple[int, ...]):
    """True class of every loss element (shape `shape`) and the number of classes, or None."""
    y = np.asarray(y_true)
    p = np.asarray(y_pred)
    axis = int(spec.option("axis", -1) or -1) if spec.kind != "sparse_categorical_crossentropy" else -1
    if y.shape == p.shape and p.ndim >= 1 and p.shape[axis] > 1:
        if not np.allclose(np.sum(y, axis=axis), 1.0, atol=1e-3):
            return None  # multi-label targets: no single true class
        labels = np.argmax(y, axis=axis)
        k = p.shape[axis]
    else:
        t = y[..., 0] if (y.ndim == p.ndim and y.ndim > 0 and y.shape[-1] == 1 and y.ndim > len(shape)) else y
        if t.shape != shape or (t.size and not np.all(np.equal(np.mod(t, 1), 0))):
            return None
        labels = t.astype(np.int64)
        k = p.shape[-1] if p.ndim > len(shape) and p.shape[-1] > 1 else int(labels.max(initial=0)) + 1
        axis = -1
    if labels.shape != shape:
        return None
    pred = np.argmax(p, axis=axis) if p.ndim > len(shape) and p.shape[axis] > 1 else None
    if pred is not None and pred.shape != shape:
        pred = None
    return labels, int(k), pred


def binary_threshold(spec: LossSpec) -> float:
    """Decision threshold on the prediction (0 on logits or hinge scores, 0.5 on probabilities)."""
    if spec.option("from_logits", False) or spec.kind in ("hinge", "squared_hinge"):
        return 0.0
    return 0.5


@dataclass
class ChannelStats:
    """Element-wise loss: streaming sums per channel (sums of coefficients are n_b-weighted)."""

    n_channels: int
    threshold: float
    combine: str = "mean"
    binary: bool = True
    loss: np.ndarray = field(init=False)  # sum c e
    weight: np.ndarray = field(init=False)  # sum c
    count: np.ndarray = field(init=False)
    pos: np.ndarray = field(init=False)
    loss_pos: np.ndarray = field(init=False)
    weight_pos: np.ndarray = field(init=False)
    tp: np.ndarray = field(init=False)
    fp: np.ndarray = field(init=False)
    fn: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        for name in ("loss", "weight", "count", "pos", "loss_pos", "weight_pos", "tp", "fp", "fn"):
            setattr(self, name, np.zeros(self.n_channels, np.float64))

    def add(self, coef: np.ndarray, e: np.ndarray, t: np.ndarray, z: np.ndarray) -> None:
        """coef: (*shape) n_b-scaled coefficients; e, t, z: (C, *shape) losses, targets, predictions."""
        C = self.n_channels
        c = np.broadcast_to(coef, e.shape[1:]).reshape(1, -1)
        e2, t2, z2 = e.reshape(C, -1), t.reshape(C, -1), z.reshape(C, -1)
        counted = c != 0
        self.loss += np.sum(c * e2, axis=1)
        self.weight += np.sum(np.broadcast_to(c, e2.shape), axis=1)
        self.count += np.sum(np.broadcast_to(counted, e2.shape), axis=1)
        if self.binary and not np.all((t2 == 0) | (t2 == 1)):
            self.binary = False
        if not self.binary:
            return
        pos = (t2 == 1) & counted
        neg = (t2 == 0) & counted
        hit = z2 > self.threshold
        self.pos += pos.sum(axis=1)
        self.loss_pos += np.sum(np.where(pos, c * e2, 0.0), axis=1)
        self.weight_pos += np.sum(np.where(pos, np.broadcast_to(c, e2.shape), 0.0), axis=1)
        self.tp += np.sum(pos & hit, axis=1)
        self.fp += np.sum(neg & hit, axis=1)
        self.fn += np.sum(pos & ~hit, axis=1)


@dataclass
class ClassStats:
    """Sample-wise loss: streaming sums per true class."""

    n_classes: int
    loss: np.ndarray = field(init=False)
    weight: np.ndarray = field(init=False)
    count: np.ndarray = field(init=False)
    correct: np.ndarray = field(init=False)
    predicted: np.ndarray = field(init=False)
    has_pred: bool = True

    def __post_init__(self) -> None:
        for name in ("loss", "weight", "count", "correct", "predicted"):
            setattr(self, name, np.zeros(self.n_classes, np.float64))

    def _grow(self, k: int) -> None:
        if k > self.n_classes:
            for name in ("loss", "weight", "count", "correct", "predicted"):
                old = getattr(self, name)
                setattr(self, name, np.concatenate([old, np.zeros(k - self.n_classes)]))
            self.n_classes = k

    def add(self, coef: np.ndarray, v: np.ndarray, labels: np.ndarray, pred: np.ndarray | None) -> None:
        c = coef.reshape(-1)
        lab = labels.reshape(-1)
        counted = c != 0
        if lab.size and lab[counted].size and (lab[counted].min() < 0):
            raise NotDecomposable("negative class labels")
        self._grow(int(lab.max(initial=-1)) + 1)
        lab_c = np.where(counted, lab, 0)
        k = self.n_classes
        self.loss += np.bincount(lab_c, weights=c * v.reshape(-1), minlength=k)[:k]
        self.weight += np.bincount(lab_c, weights=c, minlength=k)[:k]
        self.count += np.bincount(lab_c, weights=counted.astype(np.float64), minlength=k)[:k]
        if pred is None:
            self.has_pred = False
            return
        pr = pred.reshape(-1)
        self._grow(int(pr.max(initial=-1)) + 1)
        k = self.n_classes
        self.correct += np.bincount(lab_c, weights=(counted & (pr == lab)).astype(np.float64), minlength=k)[:k]
        self.predicted += np.bincount(np.where(counted, pr, 0), weights=counted.astype(np.float64),
                                      minlength=k)[:k]


def _ratio(a: float, b: float) -> float | None:
    return float(a) / float(b) if b else None


def channel_rows(output: str, stats: ChannelStats, n: int, lw: float) -> list[dict[str, Any]]:
    """Rows of an element-wise output; `loss` is the channel loss L_c (output loss = mean_c L_c)."""
    C = stats.n_channels
    factor = 1.0 / C if stats.combine == "mean" else 1.0
    rows = []
    for c in range(C):
        loss = stats.loss[c] / n
        row: dict[str, Any] = {
            "class": c, "output": output, "kind": "channel", "loss": float(loss),
            "count": int(stats.count[c]), "weight": factor, "contribution": float(lw * factor * loss),
        }
        if stats.binary:
            pos = stats.pos[c]
            neg_w = stats.weight[c] - stats.weight_pos[c]
            row.update({
                "positives": int(pos),
                "prevalence": _ratio(pos, stats.count[c]),
                "loss_positives": _ratio(stats.loss_pos[c], stats.weight_pos[c]),
                "loss_negatives": _ratio(stats.loss[c] - stats.loss_pos[c], neg_w),
                "share_from_positives": _ratio(stats.loss_pos[c], stats.loss[c]),
                "recall": _ratio(stats.tp[c], stats.tp[c] + stats.fn[c]),
                "precision": _ratio(stats.tp[c], stats.tp[c] + stats.fp[c]),
                "iou": _ratio(stats.tp[c], stats.tp[c] + stats.fp[c] + stats.fn[c]),
            })
        rows.append(row)
    return rows


def class_rows(output: str, stats: ClassStats, n: int, lw: float) -> list[dict[str, Any]]:
    """Rows of a sample-wise output, one per true class present; `loss` is the class mean L_k and
    `weight` W_k (output loss = sum_k W_k L_k; W_k = count_k / N without weights or masks)."""
    total = float(np.sum(stats.count))
    rows = []
    for k in range(stats.n_classes):
        if stats.count[k] == 0:
            continue
        weight = stats.weight[k] / n
        contribution = stats.loss[k] / n
        row: dict[str, Any] = {
            "class": k, "output": output, "kind": "true_class",
            "loss": _ratio(contribution, weight) if weight else 0.0,
            "count": int(stats.count[k]), "weight": float(weight), "contribution": float(lw * contribution),
            "prevalence": _ratio(stats.count[k], total),
        }
        if stats.has_pred:
            row.update({
                "accuracy": _ratio(stats.correct[k], stats.count[k]),
                "recall": _ratio(stats.correct[k], stats.count[k]),
                "precision": _ratio(stats.correct[k], stats.predicted[k]),
                "iou": _ratio(stats.correct[k], stats.count[k] + stats.predicted[k] - stats.correct[k]),
                "predicted": int(stats.predicted[k]),
            })
        rows.append(row)
    return rows
