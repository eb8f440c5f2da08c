"""The stateful built-in metrics in numpy (Precision, Recall, AUC, TruePositives..., PrecisionAtRecall...,
IoU family, FBetaScore/F1Score, R2Score): their confusion counts / sums accumulate over every batch,
the result is computed once. Never imports keras or tensorflow."""

from __future__ import annotations

import numpy as np

from losscheck.reference.metric_values import EPS, NEG_INF, MetricSpec, _f32
from losscheck.reference.reduction import match_rank


# -- confusion counts ----------------------------------------------------------------------------
def _filter_top_k(p: np.ndarray, k: int) -> np.ndarray:
    idx = np.argsort(-p, axis=-1, kind="stable")[..., :k]
    keep = np.zeros(p.shape, bool)
    np.put_along_axis(keep, idx, True, axis=-1)
    return np.where(keep, p, NEG_INF)


def confusion_counts(t: np.ndarray, p: np.ndarray, thresholds: np.ndarray, sample_weight: np.ndarray | None = None,
                     top_k: int | None = None, class_id: int | None = None, clip: bool = False,
                     multi_label: bool = False, label_weights: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """metrics_utils.update_confusion_matrix_variables: tp/fp/tn/fn per threshold (prediction counted
    positive when p > threshold, in float32), weighted by sample_weight (and label_weights). clip:
    predictions clipped to [0, 1] first (the evenly-spaced-thresholds path). multi_label: counts per
    label (last axis), shape (T, L)."""
    p32 = _f32(p)
    t32 = _f32(t)
    p32, t32 = match_rank(p32, t32)
    w = None
    if sample_weight is not None:
        w = np.asarray(sample_weight, np.float32)[..., None]
        if w.ndim == t32.ndim + 1 and w.shape[-1] == 1:
            w = w[..., 0]
        elif w.ndim == t32.ndim - 1:
            w = w[..., None]
    if top_k is not None:
        p32 = _filter_top_k(p32, int(top_k)).astype(np.float32)
    if class_id is not None:
        t32 = t32[..., int(class_id), None]
        p32 = p32[..., int(class_id), None]
        if w is not None and w.ndim == t32.ndim and w.shape[-1] not in (1,):
            w = w[..., int(class_id), None]
    if clip:
        p32 = np.clip(p32, 0.0, 1.0)
    weights = np.ones(p32.shape, np.float64) if w is None else np.broadcast_to(w, p32.shape).astype(np.float64)
    if label_weights is not None and not multi_label:
        weights = weights * np.broadcast_to(np.asarray(label_weights, np.float64), p32.shape)
    pos = t32.astype(bool)
    thr = np.asarray(thresholds, np.float32)
    if multi_label:
        p2 = p32.reshape(-1, p32.shape[-1])
        pos2 = pos.reshape(-1, p32.shape[-1])
        w2 = weights.reshape(-1, p32.shape[-1])
        above = p2[None, :, :] > thr.reshape(-1, 1, 1)
        return {
            "tp": np.sum(np.where(above & pos2, w2, 0.0), axis=1),
            "fp": np.sum(np.where(above & ~pos2, w2, 0.0), axis=1),
            "tn": np.sum(np.where(~above & ~pos2, w2, 0.0), axis=1),
            "fn": np.sum(np.where(~above & pos2, w2, 0.0), axis=1),
        }
    flat_p = p32.reshape(-1)
    flat_w = weights.reshape(-1)
    flat_pos = pos.reshape(-1)
    order = np.argsort(flat_p, kind="stable")
    sp = flat_p[order]
    wp = np.where(flat_pos, flat_w, 0.0)[order]
    wn = np.where(flat_pos, 0.0, flat_w)[order]
    # suffix sums: weight of the predictions strictly above each threshold
    cp = np.concatenate([np.cumsum(wp[::-1])[::-1], [0.0]])
    cn = np.concatenate([np.cumsum(wn[::-1])[::-1], [0.0]])
    idx = np.searchsorted(sp, thr, side="right")
    tp, fp = cp[idx], cn[idx]
    return {"tp": tp, "fp": fp, "tn": cn[0] - fp, "fn": cp[0] - tp}


def _div(a, b):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    with np.errstate(all="ignore"):
        return np.where(b == 0, 0.0, a / np.where(b == 0, 1.0, b))


def _evenly(thresholds: list[float]) -> bool:
    """metrics_utils.is_evenly_distributed_thresholds."""
    n = len(thresholds)
    if n < 3:
        return False
    return bool(np.allclose(thresholds, np.arange(n, dtype=np.float32) / (n - 1), atol=EPS))


class ConfusionAccumulator:
    """Precision, Recall, TruePositives/..., AUC and the X-at-Y metrics: counts per threshold, summed
    over every batch; the result is computed once from the totals."""

    def __init__(self, spec: MetricSpec) -> None:
        self.kind = spec.kind
        o = spec.options
        self.top_k = o.get("top_k")
        self.class_id = o.get("class_id")
        self.multi_label = bool(o.get("multi_label") or False)
        self.label_weights = o.get("label_weights")
        self.from_logits = bool(o.get("from_logits") or False)
        self.value = o.get("value")
        self.curve = str(o.get("curve") or "ROC").upper()
        self.summation = str(o.get("summation_method") or "interpolation").lower()
        if self.kind == "AUC":
            self.thresholds = [float(x) for x in o["thresholds"]]
            self.clip = bool(o.get("thresholds_distributed_evenly", True))
        elif self.kind in ("PrecisionAtRecall", "RecallAtPrecision", "SensitivityAtSpecificity",
                           "SpecificityAtSensitivity"):
            self.thresholds = [float(x) for x in o["thresholds"]]
            self.clip = len(self.thresholds) > 1
        else:
            raw = o.get("thresholds")
            default = 0.5 if self.top_k is None else NEG_INF
            self.thresholds = [float(x) for x in (np.atleast_1d(raw).tolist() if raw is not None else [default])]
            self.clip = _evenly(self.thresholds)
        self.counts: dict[str, np.ndarray] | None = None

    def update(self, t, p, sample_weight=None, mask=None, logits=None) -> None:
        """Add one batch's weighted tp/fp/tn/fn counts at every threshold."""
        p = np.asarray(p, np.float64)
        if self.from_logits:
            p = 1.0 / (1.0 + np.exp(-p))
        c = confusion_counts(np.asarray(t), p, np.asarray(self.thresholds), sample_weight, self.top_k,
                             self.class_id, self.clip, self.multi_label,
                             None if self.multi_label else self.label_weights)
        if self.counts is None:
            self.counts = c
        else:
            for k in c:
                self.counts[k] = self.counts[k] + c[k]

    def result(self) -> float | list[float]:
        """The metric from the accumulated counts (one value, or one per threshold)."""
        c = self.counts or {k: np.zeros(len(self.thresholds)) for k in ("tp", "fp", "tn", "fn")}
        tp, fp, tn, fn = c["tp"], c["fp"], c["tn"], c["fn"]
        k = self.kind
        single = len(self.thresholds) == 1
        if k in ("Precision", "Recall"):
            r = _div(tp, tp + fp) if k == "Precision" else _div(tp, tp + fn)
            return float(r[0]) if single else r.tolist()
        if k in ("TruePositives", "FalsePositives", "TrueNegatives", "FalseNegatives"):
            r = {"TruePositives": tp, "FalsePositives": fp, "TrueNegatives": tn, "FalseNegatives": fn}[k]
            return float(r[0]) if single else r.tolist()
        if k == "AUC":
            return self._auc(tp, fp, tn, fn)
        recall, precision = _div(tp, tp + fn), _div(tp, tp + fp)
        specificity = _div(tn, tn + fp)
        constrained, dependent = {
            "PrecisionAtRecall": (recall, precision), "RecallAtPrecision": (precision, recall),
            "SensitivityAtSpecificity": (specificity, recall), "SpecificityAtSensitivity": (recall, specificity),
        }[k]
        feasible = constrained >= np.float32(self.value)
        return float(max(0.0, np.max(np.where(feasible, dependent, 0.0), initial=0.0)))

    def _auc(self, tp, fp, tn, fn) -> float:
        curve, method = self.curve, self.summation
        n = len(self.thresholds)
        if curve == "PR" and method == "interpolation":
            dtp = tp[: n - 1] - tp[1:]
            p = tp + fp
            dp = p[: n - 1] - p[1:]
            slope = _div(dtp, np.maximum(dp, 0))
            intercept = tp[1:] - slope * p[1:]
            ratio = np.where((p[: n - 1] > 0) & (p[1:] > 0), _div(p[: n - 1], np.maximum(p[1:], 0)), 1.0)
            with np.errstate(all="ignore"):
                inc = _div(slope * (dtp + intercept * np.log(ratio)), np.maximum(tp[1:] + fn[1:], 0))
            by_label = np.sum(inc, axis=0)
        else:
            recall = _div(tp, tp + fn)
            if curve == "ROC":
                x, y = _div(fp, fp + tn), recall
            elif curve == "PR":
                x, y = recall, _div(tp, tp + fp)
            else:
                scale = _div(tp + fn, tn + fp)
                rg = np.where(tp == 0, 0.0, 1.0 - scale * _div(fn, tp))
                pg = np.where(tp == 0, 1.0, 1.0 - scale * _div(fp, tp))
                x, y = np.maximum(rg, 0.0), pg
            if method == "interpolation":
                h = (y[: n - 1] + y[1:]) / 2.0
            elif method == "minoring":
                h = np.minimum(y[: n - 1], y[1:])
            else:
                h = np.maximum(y[: n - 1], y[1:])
            by_label = np.sum((x[: n - 1] - x[1:]) * h, axis=0)
        if not self.multi_label:
            return float(by_label)
        if self.label_weights is None:
            return float(np.mean(by_label))
        lw = np.asarray(self.label_weights, np.float64)
        return float(_div(np.sum(by_label * lw), np.sum(lw)))


class IoUAccumulator:
    """IoU / MeanIoU / BinaryIoU / OneHotIoU / OneHotMeanIoU: a (C, C) confusion matrix of class
    indices (cast to the metric's dtype, int by default: floats are truncated), summed over batches."""

    def __init__(self, spec: MetricSpec) -> None:
        o = spec.options
        self.kind = spec.kind
        self.num_classes = int(o.get("num_classes") or 2)
        self.ids = list(o.get("target_class_ids") or range(self.num_classes))
        self.ignore = o.get("ignore_class")
        self.sparse_true = o.get("sparse_y_true", True) is not False
        self.sparse_pred = o.get("sparse_y_pred", True) is not False
        self.axis = int(o.get("axis") or -1)
        self.threshold = o.get("threshold")
        self.integer = "int" in str(o.get("dtype") or "int")
        self.cm = np.zeros((self.num_classes, self.num_classes), np.float64)

    def _cast(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x)
        return np.trunc(x.astype(np.float64)) if self.integer else x.astype(np.float64)

    def update(self, t, p, sample_weight=None, mask=None, logits=None) -> None:
        """Add one batch to the weighted confusion matrix (classes outside [0, num_classes) and the
        ignored class are skipped).
        """
        t, p = np.asarray(t), np.asarray(p)
        if self.kind == "BinaryIoU":
            p = (p.astype(np.float32) >= np.float32(self.threshold if self.threshold is not None else 0.5))
        if not self.sparse_true:
            t = np.argmax(t, axis=self.axis)
        if not self.sparse_pred:
            p = np.argmax(p, axis=self.axis)
        t = self._cast(t).reshape(-1)
        p = self._cast(p).reshape(-1)
        w = np.ones_like(t) if sample_weight is None else self._cast(sample_weight).reshape(-1)
        w = np.broadcast_to(w, t.shape)
        c = self.num_classes
        ok = (t >= 0) & (t < c) & (p >= 0) & (p < c)
        if self.ignore is not None:
            ok &= t != self.ignore
        np.add.at(self.cm, (t[ok].astype(np.int64), p[ok].astype(np.int64)), w[ok])

    def result(self) -> float:
        """Mean over the target classes with a non-empty union of tp / (tp + fp + fn)."""
        cm = self.cm
        rows, cols, tp = cm.sum(axis=0), cm.sum(axis=1), np.diag(cm)
        denom = (rows + cols - tp)[self.ids].astype(np.float32).astype(np.float64)
        tp = tp[self.ids]
        valid = denom > 1e-9
        iou = np.where(valid, tp / (denom + EPS), 0.0)
        n = float(np.sum(valid))
        return float(np.sum(iou) / n) if n else 0.0

    def per_class(self) -> list[float]:
        """tp / (tp + fp + fn) for every class (0.0 where the union is empty)."""
        cm = self.cm
        rows, cols, tp = cm.sum(axis=0), cm.sum(axis=1), np.diag(cm)
        denom = rows + cols - tp
        return [float(tp[i] / (denom[i] + EPS)) if denom[i] > 1e-9 else 0.0 for i in range(self.num_classes)]


class FBetaAccumulator:
    """FBetaScore / F1Score: weighted tp/fp/fn per class (or micro), thresholded like Keras."""

    def __init__(self, spec: MetricSpec) -> None:
        o = spec.options
        self.average = o.get("average")
        self.beta = float(o.get("beta") or 1.0)
        self.threshold = o.get("threshold")
        self.axis = None if self.average == "micro" else 0
        self.sums: dict[str, np.ndarray] | None = None

    def update(self, t, p, sample_weight=None, mask=None, logits=None) -> None:
        """Add one batch's weighted tp / fp / fn per class (or in total for average='micro')."""
        t = np.asarray(t, np.float32).astype(np.float64)
        p = np.asarray(p, np.float32)
        if self.threshold is None:
            top = np.max(p, axis=-1, keepdims=True)
            pb = (p >= top) & (np.abs(p) > 1e-9)
        else:
            pb = p > np.float32(self.threshold)
        pb = pb.astype(np.float64)
        w = None if sample_weight is None else np.asarray(sample_weight, np.float64)

        def wsum(v):
            if w is not None:
                v = v * w.reshape(-1, 1)
            return np.sum(v, axis=self.axis)

        c = {"tp": wsum(pb * t), "fp": wsum(pb * (1 - t)), "fn": wsum((1 - pb) * t), "iw": wsum(t)}
        self.sums = c if self.sums is None else {k: self.sums[k] + c[k] for k in c}

    def per_class(self) -> list[float] | None:
        """The F-beta score per class, or None for average='micro' or before any batch."""
        if self.sums is None or self.average == "micro":
            return None
        return list(np.atleast_1d(self._scores()).tolist())

    def _scores(self) -> np.ndarray:
        s = self.sums
        assert s is not None
        precision = s["tp"] / (s["tp"] + s["fp"] + EPS)
        recall = s["tp"] / (s["tp"] + s["fn"] + EPS)
        b2 = self.beta ** 2
        return precision * recall / (b2 * precision + recall + EPS) * (1 + b2)

    def result(self) -> float | list[float]:
        """(1 + b^2) P R / (b^2 P + R), averaged as `average` says (None: one value per class)."""
        if self.sums is None:
            return 0.0
        f = self._scores()
        if self.average == "weighted":
            weights = self.sums["iw"] / np.sum(self.sums["iw"])
            return float(np.sum(f * weights))
        if self.average == "macro":
            return float(np.mean(f))
        if self.average == "micro":
            return float(f)
        return np.atleast_1d(f).tolist()


class R2Accumulator:
    """R2Score: per-column weighted sums of y, y^2 and squared error, combined once."""

    def __init__(self, spec: MetricSpec) -> None:
        self.aggregation = spec.options.get("class_aggregation", "uniform_average")
        self.num_regressors = int(spec.options.get("num_regressors") or 0)
        self.s = self.sq = self.mse = self.count = None
        self.num_samples = 0

    def update(self, t, p, sample_weight=None, mask=None, logits=None) -> None:
        """Add one batch's per-column weighted sums of y, y^2, squared error and weight."""
        t, p = match_rank(np.asarray(t, np.float32).astype(np.float64), np.asarray(p, np.float32).astype(np.float64))
        w = np.ones(1) if sample_weight is None else np.asarray(sample_weight, np.float64)
        if w.ndim == 1 and t.ndim > 1:
            w = w[:, None]
        w = np.broadcast_to(w, t.shape)
        parts = (np.sum(t * w, axis=0), np.sum(t * t * w, axis=0), np.sum((t - p) ** 2 * w, axis=0),
                 np.sum(w, axis=0))
        if self.s is None:
            self.s, self.sq, self.mse, self.count = parts
        else:
            self.s, self.sq, self.mse, self.count = (a + b for a, b in zip((self.s, self.sq, self.mse, self.count),
                                                                              parts, strict=True))
        self.num_samples += int(t.size)

    def result(self) -> float | list[float]:
        """1 - SSE / SST per column, aggregated as class_aggregation says (adjusted for num_regressors)."""
        if self.s is None:
            return 0.0
        mean = self.s / self.count
        total = self.sq - self.s * mean
        with np.errstate(all="ignore"):
            raw = 1 - self.mse / total
        raw = np.where(np.isinf(raw), 0.0, raw)
        if self.aggregation == "uniform_average":
            r2 = np.mean(raw)
        elif self.aggregation == "variance_weighted_average":
            r2 = np.sum(total * raw) / np.sum(total)
        else:
            r2 = raw
        n, k = self.num_samples, self.num_regressors
        if k and k < n - 1:
            r2 = 1.0 - (1.0 - r2) * (n - 1.0) / (n - k - 1.0)
        return float(r2) if np.ndim(r2) == 0 else np.asarray(r2).tolist()


