"""Inference-pass observers that split each batch's loss exactly (numpy; see decompose.py)."""

from __future__ import annotations

from typing import Any

import numpy as np

from losscheck.core.errors import UsageError
from losscheck.probes.breakdown.decompose import (
    SAMPLEWISE_KINDS,
    ChannelStats,
    ClassStats,
    NotDecomposable,
    as_loss_dtype,
    batch_coefficients,
    binary_threshold,
    channel_values,
    class_labels,
)
from losscheck.reference.formulas import softmax
from losscheck.reference.reduction import loss_values_and_mask, merge_masks

#: relative disagreement between the split and the reference's batch loss that we report as a note
CHECK_RTOL = 1e-9


class _Observer:
    def __init__(self, prober, n: int) -> None:
        self.prober = prober
        self.n = n
        self.outputs = [o for o in prober.outputs if prober.specs.get(o) is not None]
        self.index = {o: prober.outputs.index(o) for o in self.outputs}
        self.lw = dict(prober.loaded.loss_weights)
        self.notes: list[str] = []
        self.max_check_error = 0.0
        self.masked = False

    def values(self, b, o: str) -> tuple[np.ndarray, np.ndarray]:
        """Per-element values of output o on this batch and their coefficients (scaled by n_b), so
        that sum(coef * values) = n_b L_o,b."""
        i = self.index[o]
        spec = self.prober.specs[o]
        mask = b.masks[i]
        if b.values[i] is not None:  # custom loss: its own values; the probe merged its mask already
            v = np.asarray(b.values[i], np.float64)
        else:
            v, own = loss_values_and_mask(spec, b.y[i], b.outputs[i], b.logits[i])
            v = np.asarray(v, np.float64)
            mask = merge_masks(mask, own)
        if mask is not None:
            self.masked = True
        try:
            coef = batch_coefficients(v.shape, as_loss_dtype(b.sample_weight, spec), mask, spec.reduction) * b.n
        except NotDecomposable as exc:
            raise UsageError(f"output {o!r}: {exc}") from exc
        got = float(np.sum(coef * v)) / b.n
        ref = b.output_losses[o]
        self.max_check_error = max(self.max_check_error, abs(got - ref) / max(abs(ref), 1e-12))
        return v, coef

    def check_note(self) -> None:
        if self.max_check_error > CHECK_RTOL:
            self.notes.append(f"the split differs from the reference batch loss by up to {self.max_check_error:.2g} "
                              "relative")


class ClassObserver(_Observer):
    """--per-class: ChannelStats for element-wise losses, ClassStats for sample-wise ones, a single
    'whole output' sum where neither applies."""

    def __init__(self, prober, n: int) -> None:
        super().__init__(prober, n)
        self.stats: dict[str, Any] = {}
        self.whole: dict[str, float] = {}
        self.whole_count: dict[str, int] = {}
        self.how: dict[str, str] = {}

    def _start(self, o: str, b, v: np.ndarray):
        i = self.index[o]
        spec = self.prober.specs[o]
        y, p, lg = b.y[i], b.outputs[i], b.logits[i]
        if spec.kind in SAMPLEWISE_KINDS or spec.kind == "custom":
            found = class_labels(spec, y, p, v.shape)
            if found is not None:
                self.how[o] = "true_class"
                return ClassStats(found[1])
            self.notes.append(f"output {o!r}: {spec.label} has no class labels to group by; shown as one row")
            return None
        try:
            e, _t, _q, combine, _axis = channel_values(spec, y, p, lg, v)
        except NotDecomposable as exc:
            self.notes.append(f"output {o!r}: {exc}; shown as one row")
            return None
        self.how[o] = "channel"
        return ChannelStats(e.shape[0], binary_threshold(spec), combine)

    def __call__(self, b) -> None:
        for o in self.outputs:
            if o not in b.output_losses:
                continue
            v, coef = self.values(b, o)
            if o not in self.stats:
                self.stats[o] = self._start(o, b, v)
            st = self.stats[o]
            i = self.index[o]
            spec = self.prober.specs[o]
            try:
                if isinstance(st, ChannelStats):
                    e, t, q, _c, _a = channel_values(spec, b.y[i], b.outputs[i], b.logits[i], v)
                    st.add(coef, e, t, q)
                elif isinstance(st, ClassStats):
                    found = class_labels(spec, b.y[i], b.outputs[i], v.shape)
                    if found is None:
                        raise NotDecomposable("targets stopped looking like class labels")
                    st.add(coef, v, found[0], found[2])
                else:
                    self.whole[o] = self.whole.get(o, 0.0) + float(np.sum(coef * v))
                    self.whole_count[o] = self.whole_count.get(o, 0) + int(np.count_nonzero(
                        np.broadcast_to(coef, v.shape)))
            except NotDecomposable as exc:
                raise UsageError(f"output {o!r}: cannot split the loss per class: {exc}") from exc


class SampleObserver(_Observer):
    """--per-sample: every sample's exact share l_s (mean over samples = the data loss), and the
    `top` worst with target/prediction summaries."""

    def __init__(self, prober, n: int, top: int) -> None:
        super().__init__(prober, n)
        self.top_k = top
        self.losses = np.zeros(n, np.float64)
        self.by_output = {o: np.zeros(n, np.float64) for o in self.outputs}
        self.top: list[dict[str, Any]] = []

    def __call__(self, b) -> None:
        total = np.zeros(b.n, np.float64)
        for o in self.outputs:
            if o not in b.output_losses:
                continue
            v, coef = self.values(b, o)
            if v.ndim == 0 or v.shape[0] != b.n:
                raise UsageError(f"output {o!r}: the loss values {v.shape} have no batch axis to split per sample")
            per = np.broadcast_to(coef * v, v.shape).reshape(b.n, -1).sum(axis=1)
            self.by_output[o][b.start:b.stop] = per
            total += self.lw[o] * per
        self.losses[b.start:b.stop] = total
        worst = np.argsort(-total, kind="stable")[: self.top_k]
        for j in worst:
            row: dict[str, Any] = {"index": int(b.start + j), "loss": float(total[j])}
            targets, preds = [], []
            for o in self.outputs:
                i = self.index[o]
                spec = self.prober.specs[o]
                t, p = summarize(spec, b.y[i][j], b.outputs[i][j])
                prefix = f"{o}: " if len(self.outputs) > 1 else ""
                targets.append(prefix + t)
                preds.append(prefix + p)
            if len(self.outputs) > 1:
                row["outputs"] = {o: float(self.by_output[o][b.start + j]) for o in self.outputs}
            if b.sample_weight is not None:
                row["sample_weight"] = _fmt(np.asarray(b.sample_weight)[j])
            row["target"] = "; ".join(targets)
            row["prediction"] = "; ".join(preds)
            self.top.append(row)
        self.top.sort(key=lambda r: (-r["loss"], r["index"]))
        del self.top[self.top_k:]


def _fmt(a: Any) -> str:
    arr = np.asarray(a, np.float64)
    if arr.ndim == 0:
        return f"{float(arr):.4g}"
    return "[" + ", ".join(f"{float(x):.3g}" for x in arr.reshape(-1)) + "]"


def _counts(labels: np.ndarray, most: int = 6) -> str:
    values, counts = np.unique(labels, return_counts=True)
    order = np.argsort(-counts, kind="stable")[:most]
    text = ", ".join(f"{int(values[i])}: {int(counts[i])}" for i in sorted(order, key=lambda i: values[i]))
    return "{" + text + (", ..." if len(values) > most else "") + "}"


def summarize(spec, y: np.ndarray, p: np.ndarray) -> tuple[str, str]:
    """Short target / prediction text for one sample of one output."""
    y = np.asarray(y)
    p = np.asarray(p, np.float64)
    if spec.kind in SAMPLEWISE_KINDS and p.ndim == 1 and p.size > 1 and (y.shape == p.shape or y.size == 1):
        true = int(np.argmax(y)) if y.shape == p.shape else int(np.ravel(y)[0])
        probs = softmax(p) if spec.option("from_logits", False) else p
        j = int(np.argmax(probs))
        text = f"class {j} (p={probs[j]:.3g})"
        if 0 <= true < probs.size and true != j:
            text += f", p(class {true})={probs[true]:.3g}"
        return f"class {true}", text
    if spec.kind in SAMPLEWISE_KINDS and p.ndim >= 2 and p.shape[-1] > 1:  # a class per position
        labels = np.argmax(y, axis=-1) if y.shape == p.shape else (y[..., 0] if y.ndim == p.ndim else y)
        labels = np.asarray(labels).astype(np.int64).reshape(-1)
        pred = np.argmax(p, axis=-1).reshape(-1)
        if labels.size == pred.size:
            return (f"classes {_counts(labels)} over {labels.size} positions",
                    f"accuracy {np.mean(labels == pred):.3g}; predicted {_counts(pred)}")
    if y.size <= 6 and p.size <= 6:
        return _fmt(y), _fmt(p)
    yf = y.astype(np.float64)
    if p.ndim >= 2 and y.shape == p.shape and np.all((yf == 0) | (yf == 1)):
        C = p.shape[-1]
        thr = binary_threshold(spec)
        t = yf.reshape(-1, C).sum(axis=0).astype(int)
        q = (p.reshape(-1, C) > thr).sum(axis=0).astype(int)
        per = p.size // C
        return (f"positives per channel {t.tolist()} of {per}", f"predicted positives {q.tolist()}")
    return (f"mean {yf.mean():.4g} in [{yf.min():.4g}, {yf.max():.4g}]",
            f"mean {p.mean():.4g} in [{p.min():.4g}, {p.max():.4g}]")
