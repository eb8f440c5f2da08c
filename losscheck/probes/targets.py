"""The targets as Keras takes them versus what they mean, and the number the user's own numpy
arithmetic gives: an observer on the inference pass (no pass of its own) whose facts the target-shape
and target-range rules read (losscheck.rules.metrics).

target-shape:
  - y of shape (n,) against an output of shape (n, 1) (or the reverse), with an element-wise loss:
    Keras expands/squeezes y to the output's rank, but the same loss written in numpy (e.g.
    `np.mean((y - p)**2)`) broadcasts to an (n, n) matrix. The naive figure is the output's own loss
    over every pair, mean_ij L(y_i, p_j), on predict() outputs: for squared error mean(y^2) -
    2 mean(y) mean(p) + mean(p^2); for a loss affine in y (binary crossentropy, Poisson)
    mean_j L(0, p_j) + mean(y) mean_j (L(1, p_j) - L(0, p_j)); for the others every pair, in blocks,
    up to PAIRWISE_SAMPLES samples. The per-sample figure is mean_i L(y_i, p_i) on the same outputs.
  - class indices (n,) / (n, 1) against a (n, C) output with an element-wise loss (MSE, BCE, ...):
    Keras broadcasts the index against every class without complaint; the right figure is the same
    loss on one-hot targets.
target-range:
  - targets outside [0, 1] for binary crossentropy / focal / Dice / Tversky;
  - negative targets for KL divergence / Poisson / MSLE (clipped to eps or giving negative losses);
  - rows that do not sum to 1 for categorical crossentropy / KL divergence.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from losscheck.core.taxonomy import (
    DISTRIBUTION_KINDS,
    LAST_AXIS_MEAN_KINDS,
    NON_NEGATIVE_KINDS,
    SPARSE_KINDS,
    UNIT_RANGE_KINDS,
)
from losscheck.measurements.metrics import TargetFacts
from losscheck.reference import EpochMean, output_batch_loss
from losscheck.reference.reduction import loss_values_and_mask

ROW_TOLERANCE = 1e-3
#: most samples whose (n, n) pairs are evaluated one by one (losses without a closed form)
PAIRWISE_SAMPLES = 4096
#: losses affine in the target: L(y, p) = L(0, p) + y (L(1, p) - L(0, p)), so the pairwise mean factorizes
_AFFINE_IN_TARGET = frozenset({"binary_crossentropy", "poisson"})


def _values(spec: Any, y: np.ndarray, p: np.ndarray) -> np.ndarray:
    """Per-sample values of the loss on flat y and p (one value each), from predict()'s outputs."""
    values, _ = loss_values_and_mask(spec, y.reshape(-1, 1), p.reshape(-1, 1), None, logits_mode="never")
    return np.asarray(values, np.float64).reshape(-1)


def pairwise_mean(spec: Any, y: np.ndarray, p: np.ndarray, block: int = 1 << 21) -> float:
    """mean_ij L(y_i, p_j): the loss on y - p broadcast to (n, n), row block by row block."""
    n = y.size
    rows = max(1, block // max(n, 1))
    total = 0.0
    for i in range(0, n, rows):
        t = np.broadcast_to(y[i:i + rows, None], (min(rows, n - i), n))
        q = np.broadcast_to(p[None, :], t.shape)
        values, _ = loss_values_and_mask(spec, t, q, None, logits_mode="never")
        total += float(np.sum(np.asarray(values, np.float64)))
    return total / n


@dataclass
class OutputTargets:
    """Sums kept for one output."""

    naive: list[float] = field(default_factory=lambda: [0.0] * 5)  # n, sum y, sum y^2, sum p, sum p^2
    affine: list[float] = field(default_factory=lambda: [0.0] * 2)  # sum L(0, p), sum L(1, p)
    per_sample: float = 0.0  # sum_i L(y_i, p_i)
    kept: list[tuple[np.ndarray, np.ndarray]] = field(default_factory=list)  # flat (y, p), other losses
    flat: bool = False  # y (n,) vs output (n, 1), or the reverse
    indices: bool = False  # class indices against a (n, C) output with an element-wise loss
    one_hot: EpochMean = field(default_factory=EpochMean)
    keras: EpochMean = field(default_factory=EpochMean)
    classes: int = 0
    values: int = 0
    out_of_range: int = 0
    y_min: float = np.inf
    y_max: float = -np.inf
    rows: int = 0
    bad_rows: int = 0
    row_min: float = np.inf
    row_max: float = -np.inf
    negative_losses: int = 0
    loss_min: float = np.inf


class TargetsObserver:
    """Per output with a built-in loss: the sums and counts behind TargetFacts, batch by batch."""

    def __init__(self, loaded: Any) -> None:
        self.loaded = loaded
        self.outputs = list(loaded.output_names)
        self.stats: dict[str, OutputTargets] = {}
        self.errors: dict[str, str] = {}

    def __call__(self, b: Any) -> None:
        specs = self.loaded.specs
        for i, o in enumerate(self.outputs):
            spec = specs.get(o)
            if spec is None or spec.kind == "custom" or o in self.errors:
                continue
            try:
                self._update(o, spec, b, i)
            except Exception as exc:  # noqa: BLE001 - a shape this check cannot follow: no finding
                self.errors[o] = f"{type(exc).__name__}: {exc}"

    def _update(self, o: str, spec: Any, b: Any, i: int) -> None:
        st = self.stats.setdefault(o, OutputTargets())
        y = np.asarray(b.y[i], np.float64)
        p = np.asarray(b.outputs[i], np.float64)
        # (n,) against (n, 1), either way round: numpy broadcasts y - p to (n, n)
        if spec.kind in LAST_AXIS_MEAN_KINDS and (
                (y.ndim == 1 and p.ndim == 2 and p.shape[1] == 1) or (p.ndim == 1 and y.ndim == 2 and y.shape[1] == 1)):
            self._flat(st, spec, y.reshape(-1), p.reshape(-1))
        classes = p.shape[-1] if p.ndim >= 2 else 1
        index_like = (y.ndim == p.ndim - 1) or (y.ndim == p.ndim and y.shape[-1] == 1)
        if (classes > 1 and index_like and spec.kind not in SPARSE_KINDS
                and np.all(y == np.round(y)) and y.size and y.min() >= 0 and y.max() < classes):
            st.indices, st.classes = True, classes
            labels = (y[..., 0] if y.ndim == p.ndim else y).astype(np.int64)
            onehot = np.eye(classes)[labels]
            st.one_hot.add(output_batch_loss(spec, onehot, p, sample_weight=b.sample_weight, mask=b.masks[i]), b.n)
            st.keras.add(b.output_losses.get(o, np.nan), b.n)
        kind = spec.kind
        if kind in UNIT_RANGE_KINDS or kind in NON_NEGATIVE_KINDS:
            bad = (y < 0) | (y > 1) if kind in UNIT_RANGE_KINDS else (y < 0)
            st.values += int(y.size)
            st.out_of_range += int(bad.sum())
            if y.size:
                st.y_min, st.y_max = min(st.y_min, float(y.min())), max(st.y_max, float(y.max()))
        if kind in DISTRIBUTION_KINDS and y.ndim >= 2 and y.shape[-1] > 1 and y.shape == p.shape:
            sums = y.sum(axis=-1).reshape(-1)
            bad = np.abs(sums - 1.0) > ROW_TOLERANCE
            st.rows += int(sums.size)
            st.bad_rows += int(bad.sum())
            if sums.size:
                st.row_min, st.row_max = min(st.row_min, float(sums.min())), max(st.row_max, float(sums.max()))
        if st.out_of_range or st.bad_rows:
            values, _ = loss_values_and_mask(spec, y, p, b.logits[i])
            values = np.asarray(values, np.float64)
            st.negative_losses += int((values < 0).sum())
            if values.size:
                st.loss_min = min(st.loss_min, float(np.nanmin(values)))

    @staticmethod
    def _flat(st: OutputTargets, spec: Any, yv: np.ndarray, pv: np.ndarray) -> None:
        st.flat = True
        with np.errstate(all="ignore"):
            st.per_sample += float(np.sum(_values(spec, yv, pv)))
            if spec.kind in _AFFINE_IN_TARGET:
                st.affine[0] += float(np.sum(_values(spec, np.zeros_like(pv), pv)))
                st.affine[1] += float(np.sum(_values(spec, np.ones_like(pv), pv)))
            elif spec.kind != "mean_squared_error":  # squared error: the sums below suffice
                if st.naive[0] + yv.size <= PAIRWISE_SAMPLES:
                    st.kept.append((yv, pv))
                else:
                    st.kept.clear()
        for k, v in enumerate((yv.size, yv.sum(), (yv ** 2).sum(), pv.sum(), (pv ** 2).sum())):
            st.naive[k] += float(v)

    def _naive(self, st: OutputTargets, spec: Any) -> float | None:
        """mean_ij L(y_i, p_j) over the whole data (None: too many samples for a loss without a closed form)."""
        n, sy, sy2, sp, sp2 = st.naive
        if spec.kind == "mean_squared_error":
            return sy2 / n - 2.0 * (sy / n) * (sp / n) + sp2 / n
        if spec.kind in _AFFINE_IN_TARGET:
            l0, l1 = st.affine
            return l0 / n + (sy / n) * (l1 - l0) / n
        if not st.kept or sum(y.size for y, _ in st.kept) != n:
            return None
        y = np.concatenate([k[0] for k in st.kept])
        p = np.concatenate([k[1] for k in st.kept])
        with np.errstate(all="ignore"):
            return pairwise_mean(spec, y, p)

    def facts(self) -> tuple[TargetFacts, ...]:
        """What the target rules read, per output with a built-in loss (in the order first seen)."""
        out = []
        specs = self.loaded.specs
        for o, st in self.stats.items():
            naive = per_sample = None
            if st.flat and st.naive[0]:
                naive = self._naive(st, specs[o])
                per_sample = st.per_sample / st.naive[0]
            indices = st.indices and bool(st.one_hot.count)
            out.append(TargetFacts(
                output=o, label=specs[o].label, kind=specs[o].kind,
                naive=naive, per_sample=per_sample, flat_samples=int(st.naive[0]) if st.flat else 0,
                classes=st.classes,
                keras_on_indices=float(st.keras.value) if indices else None,
                on_one_hot=float(st.one_hot.value) if indices else None,
                values=st.values, out_of_range=st.out_of_range, y_min=st.y_min, y_max=st.y_max, rows=st.rows,
                bad_rows=st.bad_rows, row_min=st.row_min, row_max=st.row_max, negative_losses=st.negative_losses,
                loss_min=st.loss_min))
        return tuple(out)
