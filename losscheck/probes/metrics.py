"""Compiled metrics on the inference pass (no pass of their own): losscheck's numpy values.

MetricsObserver: the observer the compiled metrics ride on in the inference pass. Keras's own values:
probes/keras_metrics.py (KerasMetrics); what both gave, as the frozen record the metric rules read:
probes/metric_facts.py (metric_measurements). Which metrics a model compiles:
probes/compiled_metrics.py; the `metrics` / `per_class_metrics` sections are rendered by
report/metrics.py.

Per batch and per compiled metric: the numpy accumulator (reference/metrics.py) with sample weights
for `weighted_metrics` only and the output's Keras mask for mean-wrapper metrics, as CompileMetrics
passes them; for threshold metrics the same metric on probabilities made from the outputs (sigmoid of
logits, (p + 1) / 2 of tanh) for metric-threshold; for metrics that give one value per batch, every
batch kept so the dataset value can be computed once (metric-batch-mean); per-class values on demand.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from losscheck.probes.compiled_metrics import CompiledMetric, compiled_metrics
from losscheck.reference.metric_states import confusion_counts
from losscheck.reference.metric_values import MetricSpec, metric_values
from losscheck.reference.metrics import CLASS_ID_KINDS, THRESHOLD_KINDS, accumulator

#: largest y + prediction bytes kept per output to compute a per-batch metric on the whole dataset
KEEP_BYTES = 256 * 1024 * 1024
_ACCURACY_BY_CLASS = ("fn:categorical_accuracy", "fn:sparse_categorical_accuracy", "fn:accuracy",
                      "fn:top_k_categorical_accuracy", "fn:sparse_top_k_categorical_accuracy")


def to_probabilities(p: np.ndarray, activation: str | None) -> np.ndarray:
    """What a threshold at 0.5 should see: sigmoid of logits, or tanh's [-1, 1] mapped to [0, 1]."""
    p = np.asarray(p, np.float64)
    if activation == "tanh":
        return (p + 1.0) / 2.0
    with np.errstate(invalid="ignore"):
        return np.exp(-np.logaddexp(0.0, -p))


def thresholds_of(spec: MetricSpec) -> float | tuple[float, ...] | None:
    """The threshold(s) a threshold metric compares predictions with (None: FBetaScore/F1Score without
    one, which take each row's maximum)."""
    if "thresholds" in spec.options:
        thr = spec.options["thresholds"]
        return tuple(float(t) for t in thr) if isinstance(thr, (list, tuple)) else float(thr)
    if spec.kind in ("FBetaScore", "F1Score") and spec.options.get("threshold") is None:
        return None
    value = spec.option("threshold", 0.5)
    return float(value) if isinstance(value, (int, float)) else None


def _single_threshold(spec: MetricSpec) -> float | None:
    thr = thresholds_of(spec)
    if isinstance(thr, tuple):
        return thr[0] if len(thr) == 1 else None
    return thr


def _at_threshold(spec: MetricSpec, value: float) -> MetricSpec:
    """The same metric with its one threshold at `value`."""
    key = "thresholds" if "thresholds" in spec.options else "threshold"
    return MetricSpec(spec.kind, {**spec.options, key: [value] if key == "thresholds" else value})


@dataclass
class ClassIdTrack:
    """A metric that reads class ids, recomputed on class ids made from the outputs."""

    acc: Any
    values: int = 0
    non_integer: int = 0
    how: str = ""
    error: str | None = None


@dataclass
class MetricTrack:
    """What the observer keeps for one compiled metric."""

    entry: CompiledMetric
    acc: Any = None
    alt: Any = None  # the same metric on to_probabilities(outputs)
    half: Any = None  # the same metric on the outputs with its one threshold at 0.5 (a threshold outside (0, 1))
    ids: ClassIdTrack | None = None
    scalar: bool | None = None  # the metric's function gives one value per batch
    kept: list[tuple[np.ndarray, np.ndarray]] = field(default_factory=list)
    kept_bytes: int = 0
    batch_sizes: list[int] = field(default_factory=list)
    per_class: dict[int, list[float]] = field(default_factory=dict)  # class -> [sum, count]
    per_class_conf: dict[int, Any] = field(default_factory=dict)
    error: str | None = None


class MetricsObserver:
    """Recomputes every compiled metric in numpy from the inference pass's batches."""

    def __init__(self, loaded: Any, per_class: bool = False) -> None:
        self.loaded = loaded
        self.outputs = list(loaded.output_names)
        self.per_class = per_class
        self.tracks: list[MetricTrack] | None = None
        self.ranges: dict[str, list[float]] = {}
        self.masked: set[str] = set()
        self.binary_targets: dict[str, bool] = {}  # every target is 0 or 1 (a classification output)
        self.activations = _activations(loaded)

    def _start(self) -> list[MetricTrack]:
        tracks = []
        for e in compiled_metrics(self.loaded.model, self.outputs):
            t = MetricTrack(e)
            if e.spec is not None:
                t.acc = accumulator(e.spec)
                if e.spec.kind in THRESHOLD_KINDS and not e.spec.option("from_logits", False):
                    t.alt = accumulator(e.spec)
                    single = _single_threshold(e.spec)
                    if single is not None and not 0.0 < single < 1.0:
                        t.half = accumulator(_at_threshold(e.spec, 0.5))
                if e.spec.kind in CLASS_ID_KINDS and e.spec.options.get("sparse_y_pred", True) is not False:
                    ids = MetricSpec(e.spec.kind, {**e.spec.options, "sparse_y_true": True, "sparse_y_pred": True})
                    t.ids = ClassIdTrack(accumulator(ids))
            tracks.append(t)
        return tracks

    def __call__(self, b: Any) -> None:
        if self.tracks is None:
            self.tracks = self._start()
        for i, o in enumerate(self.outputs):
            if i < len(b.masks) and b.masks[i] is not None:
                self.masked.add(o)
            if self.binary_targets.get(o, True):
                y = np.asarray(b.y[i])
                self.binary_targets[o] = bool(np.all((y == 0) | (y == 1)))
            p = b.outputs[i]
            if p is not None and np.size(p) and np.issubdtype(np.asarray(p).dtype, np.floating):
                with np.errstate(all="ignore"):
                    lo, hi = float(np.nanmin(p)), float(np.nanmax(p))
                r = self.ranges.setdefault(o, [lo, hi])
                r[0], r[1] = min(r[0], lo), max(r[1], hi)
        for track in self.tracks:
            if track.ids is not None and track.ids.error is None:
                try:
                    self._update_ids(track, b)
                except Exception as exc:  # noqa: BLE001 - class ids numpy cannot make: no comparison, no fake
                    track.ids.error = f"{type(exc).__name__}: {str(exc)[:160]}"
            if track.error is None:
                try:
                    self._update(track, b)
                except Exception as exc:  # noqa: BLE001 - a shape numpy cannot follow: no manual, never a fake
                    track.error = f"{type(exc).__name__}: {str(exc)[:160]}"

    def _update(self, track: MetricTrack, b: Any) -> None:
        e = track.entry
        i = e.index
        t, p = b.y[i], b.outputs[i]
        sw = b.sample_weight if e.weighted else None
        mask = b.masks[i] if i < len(b.masks) else None
        specs = self.loaded.specs
        spec = specs.get(e.output)
        logits = b.logits[i] if e.spec is not None and spec is not None and e.spec.kind == f"loss:{spec.kind}" else None
        if track.acc is not None:
            track.acc.update(t, p, sw, mask, logits)
        if track.alt is not None:
            track.alt.update(t, to_probabilities(p, self.activations.get(e.output)), sw, mask, None)
        if track.half is not None:
            track.half.update(t, p, sw, mask, None)
        if track.scalar is None:
            track.scalar = self._is_scalar(track, t, p)
        track.batch_sizes.append(b.n)
        if track.scalar and track.kept_bytes <= KEEP_BYTES:
            track.kept.append((np.asarray(t), np.asarray(p)))
            track.kept_bytes += np.asarray(t).nbytes + np.asarray(p).nbytes
        if self.per_class and e.spec is not None:
            self._per_class(track, t, p, sw)

    def _update_ids(self, track: MetricTrack, b: Any) -> None:
        """Count the predictions that are not whole numbers and update the metric on class ids made
        from the outputs: argmax over the last axis (targets of the same shape: their argmax too), or
        for one channel the outputs above 0.5 (0 for a linear or tanh output)."""
        ids = track.ids
        assert ids is not None
        e = track.entry
        t, p = np.asarray(b.y[e.index]), np.asarray(b.outputs[e.index])
        if not np.issubdtype(p.dtype, np.floating):
            return
        ids.values += int(p.size)
        with np.errstate(invalid="ignore"):
            ids.non_integer += int(np.sum(np.isfinite(p) & (p != np.trunc(p))))
        if p.ndim > 1 and p.shape[-1] > 1:
            p_ids = np.argmax(p, axis=-1)
            one_hot = e.spec is not None and e.spec.options.get("sparse_y_true") is False
            if one_hot or t.shape == p.shape:
                t_ids, ids.how = np.argmax(t, axis=-1), "the argmax over the last axis of outputs and targets"
            else:
                t_ids, ids.how = (t[..., 0] if t.ndim == p.ndim else t), "the argmax over the last axis"
        else:
            cut = 0.0 if self.activations.get(e.output) in ("linear", "tanh") else 0.5
            p_ids, t_ids = (p > cut).astype(np.float64), t
            ids.how = f"outputs above {cut:g}"
        sw = b.sample_weight if e.weighted else None
        ids.acc.update(t_ids, p_ids, sw, None, None)

    @staticmethod
    def _is_scalar(track: MetricTrack, t: np.ndarray, p: np.ndarray) -> bool:
        e = track.entry
        if e.spec is not None and e.spec.kind.startswith(("fn:", "loss:")):
            return np.ndim(metric_values(e.spec.kind, t, p, e.spec.options)[0]) == 0
        if e.custom_function:
            from losscheck._tf import keras

            value = e.fn(keras.ops.convert_to_tensor(t), keras.ops.convert_to_tensor(p),
                         **dict(getattr(e.metric, "_fn_kwargs", {}) or {}))
            return len(getattr(value, "shape", ())) == 0
        return False

    def _per_class(self, track: MetricTrack, t: np.ndarray, p: np.ndarray, sw: np.ndarray | None) -> None:
        e = track.entry
        spec = e.spec
        assert spec is not None
        kind = spec.kind
        p = np.asarray(p)
        channels = p.shape[-1] if p.ndim > 1 else 1
        if kind in _ACCURACY_BY_CLASS:
            values = np.asarray(metric_values(kind, t, p, spec.options)[0], np.float64)
            tt = np.asarray(t)
            if kind in ("fn:categorical_accuracy", "fn:top_k_categorical_accuracy"):
                labels = np.argmax(tt, axis=-1)
            else:
                labels = tt[..., 0] if tt.ndim == p.ndim and tt.shape[-1] == 1 else tt
            if kind == "fn:accuracy" and channels > 1:
                return
            _group(track.per_class, np.round(labels).astype(np.int64).reshape(-1), values.reshape(-1))
        elif kind == "fn:binary_accuracy":
            values = np.asarray(metric_values(kind, t, p, spec.options)[0], np.float64)
            if channels > 1 and values.shape[-1] == channels:
                flat = values.reshape(-1, channels)
                for c in range(channels):
                    _group(track.per_class, np.full(flat.shape[0], c), flat[:, c])
            else:
                _group(track.per_class, np.round(np.asarray(t, np.float64)).astype(np.int64).reshape(-1),
                       values.reshape(-1))
        elif kind in ("Precision", "Recall") and channels > 1 and spec.option("class_id") is None \
                and spec.option("top_k") is None:
            thr = np.asarray(spec.options["thresholds"][:1])
            for c in range(channels):
                counts = confusion_counts(np.asarray(t), p, thr, sw, class_id=c)
                prev = track.per_class_conf.get(c)
                track.per_class_conf[c] = counts if prev is None else {k: prev[k] + counts[k] for k in counts}

    # -- results ---------------------------------------------------------------------------------
    def section(self, keras_values: dict[str, Any] | None) -> dict[str, dict[str, Any]]:
        """{name: {"evaluate", "manual", "output", "metric", "weighted", ["reason"]}} in Keras's order."""
        out: dict[str, dict[str, Any]] = {}
        keras_values = keras_values or {}
        for track in self.tracks or []:
            e = track.entry
            manual = None
            reason = e.reason
            if track.acc is not None and track.error is None:
                manual = track.acc.result()
            elif track.error is not None:
                reason = f"losscheck could not recompute it on this data ({track.error})"
            row: dict[str, Any] = {"evaluate": keras_values.get(e.name), "manual": manual, "output": e.output,
                                   "metric": e.label, "weighted": e.weighted}
            if reason:
                row["reason"] = reason
            out[e.name] = row
        return out

    def dataset_value(self, track: MetricTrack) -> float | None:
        """A per-batch metric computed once on every sample (None when the batches were not all kept)."""
        if not track.kept or sum(len(t) for t, _ in track.kept) != sum(track.batch_sizes):
            return None
        t = np.concatenate([k[0] for k in track.kept])
        p = np.concatenate([k[1] for k in track.kept])
        e = track.entry
        if e.spec is not None and e.spec.kind.startswith(("fn:", "loss:")):
            return float(np.mean(metric_values(e.spec.kind, t, p, e.spec.options)[0]))
        from losscheck._tf import keras

        value = e.fn(keras.ops.convert_to_tensor(t), keras.ops.convert_to_tensor(p),
                     **dict(getattr(e.metric, "_fn_kwargs", {}) or {}))
        return float(np.mean(np.asarray(value, np.float64)))

    def per_class_rows(self) -> list[dict[str, Any]]:
        """[{"output", "class", "<metric name>": value, ...}] for the metrics that have per-class values."""
        rows: dict[tuple[str, int], dict[str, Any]] = {}
        for track in self.tracks or []:
            e = track.entry
            if track.error is not None:
                continue
            values: dict[int, float] = {}
            if track.per_class:
                values = {c: s / n for c, (s, n) in track.per_class.items() if n}
            elif track.per_class_conf:
                for c, cnt in track.per_class_conf.items():
                    tp, fp, fn = float(cnt["tp"][0]), float(cnt["fp"][0]), float(cnt["fn"][0])
                    den = tp + fp if e.spec is not None and e.spec.kind == "Precision" else tp + fn
                    values[c] = tp / den if den else 0.0
            elif track.acc is not None and hasattr(track.acc, "per_class"):
                pc = track.acc.per_class()
                values = dict(enumerate(pc)) if pc else {}
            for c, v in sorted(values.items()):
                row = rows.setdefault((e.output, int(c)), {"output": e.output, "class": int(c)})
                row[e.name] = float(v)
        return [rows[k] for k in sorted(rows, key=lambda k: (self.outputs.index(k[0])
                                                               if k[0] in self.outputs else 0, k[1]))]


def _group(store: dict[int, list[float]], labels: np.ndarray, values: np.ndarray) -> None:
    for c in np.unique(labels):
        sel = labels == c
        acc = store.setdefault(int(c), [0.0, 0.0])
        acc[0] += float(np.sum(values[sel]))
        acc[1] += float(np.sum(sel))


def _activations(loaded: Any) -> dict[str, str | None]:
    try:
        from losscheck.probes.lossfn.graph import output_facts

        return {f.name: f.activation for f in output_facts(loaded.model, list(loaded.output_names))}
    except Exception:  # noqa: BLE001 - unknown activations: logits are then told by the output range alone
        return {}
