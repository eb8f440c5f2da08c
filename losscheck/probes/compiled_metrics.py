"""The model's compiled metrics: their names as Keras logs them, the output each measures, whether
sample weights apply (`weighted_metrics`) and what losscheck recomputes for each. Keras's own values
come from losscheck.probes.metrics.KerasMetrics.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from losscheck.reference.metric_values import MetricSpec
from losscheck.reference.metrics import supported


@dataclass
class CompiledMetric:
    """One compiled metric. spec None: not recomputed (reason says why)."""

    name: str
    metric: Any
    output: str
    index: int
    weighted: bool
    spec: MetricSpec | None
    reason: str | None
    label: str  # class or function name

    @property
    def fn(self) -> Any:
        return getattr(self.metric, "_fn", None)

    @property
    def custom_function(self) -> bool:
        fn = self.fn
        return fn is not None and not str(getattr(fn, "__module__", "")).startswith("keras.")


def _builtin(obj: Any) -> bool:
    return str(getattr(type(obj), "__module__", "")).startswith("keras.src.metrics")


def _thresholds(value: Any) -> list[float]:
    return [float(x) for x in np.atleast_1d(np.asarray(value, dtype=np.float64)).tolist()]


def metric_spec(m: Any) -> tuple[MetricSpec | None, str | None, str]:
    """(MetricSpec, None, label) for a metric numpy recomputes, else (None, reason, label)."""
    from losscheck._tf import keras

    fn = getattr(m, "_fn", None)
    if isinstance(m, keras.metrics.MeanMetricWrapper) and fn is not None:
        module = str(getattr(fn, "__module__", ""))
        name = getattr(fn, "__name__", type(fn).__name__)
        options = dict(getattr(m, "_fn_kwargs", {}) or {})
        kind = None
        if module.startswith("keras.src.metrics"):
            kind = f"fn:{name}"
        elif module.startswith("keras.src.losses"):
            kind = f"loss:{name}"
        if kind is not None and supported(kind):
            return MetricSpec(kind, options), None, name
        if kind is None:
            return None, f"custom metric function {name!r}: losscheck cannot recompute the user's own code", name
        return None, f"{name} is not recomputed by losscheck", name
    cls = type(m).__name__
    if not _builtin(m):
        return None, f"custom Metric class {cls!r}: losscheck cannot recompute the user's own code", cls
    o: dict[str, Any] = {}
    if cls in ("Precision", "Recall"):
        o = {"thresholds": _thresholds(m.thresholds), "top_k": m.top_k, "class_id": m.class_id}
    elif cls in ("TruePositives", "FalsePositives", "TrueNegatives", "FalseNegatives"):
        o = {"thresholds": _thresholds(m.thresholds)}
    elif cls == "AUC":
        lw = getattr(m, "label_weights", None)
        o = {"thresholds": _thresholds(m._thresholds),
             "thresholds_distributed_evenly": bool(m._thresholds_distributed_evenly),
             "curve": m.curve.value, "summation_method": m.summation_method.value, "multi_label": bool(m.multi_label),
             "label_weights": None if lw is None else np.asarray(lw).tolist(), "from_logits": bool(m._from_logits)}
    elif cls in ("PrecisionAtRecall", "RecallAtPrecision", "SensitivityAtSpecificity", "SpecificityAtSensitivity"):
        o = {"thresholds": _thresholds(m.thresholds), "value": float(m.value), "class_id": m.class_id}
    elif cls in ("IoU", "MeanIoU", "BinaryIoU", "OneHotIoU", "OneHotMeanIoU"):
        o = {"num_classes": int(m.num_classes), "target_class_ids": list(m.target_class_ids),
             "ignore_class": m.ignore_class, "sparse_y_true": m.sparse_y_true, "sparse_y_pred": m.sparse_y_pred,
             "axis": m.axis, "threshold": getattr(m, "threshold", None), "dtype": str(m.dtype)}
    elif cls in ("FBetaScore", "F1Score"):
        o = {"average": m.average, "beta": float(m.beta), "threshold": m.threshold}
    elif cls == "R2Score":
        o = {"class_aggregation": m.class_aggregation, "num_regressors": int(m.num_regressors)}
    spec = MetricSpec(cls, o)
    if not supported(cls):
        return None, f"{cls} is not recomputed by losscheck", cls
    return spec, None, cls


def _prefixed(output_name: str | None, name: str) -> str:
    return f"{output_name}_{name}" if output_name else name


def _unique(name: str, counters: dict[str, int]) -> str:
    """`name` the first time, then `name_1`, `name_2`, ... (counters counts the uses of each name)."""
    if name not in counters:
        counters[name] = 1
        return name
    i = counters[name]
    counters[name] += 1
    return f"{name}_{i}"


def compiled_metrics(model: Any, outputs: list[str]) -> list[CompiledMetric]:
    """Every compiled metric of a built CompileMetrics, named as its result() names them."""
    cm = getattr(model, "_compile_metrics", None)
    if cm is None or not getattr(cm, "built", False):
        return []
    out: list[CompiledMetric] = []
    counters: dict[str, int] = {}

    def add(name: str, m: Any, index: int, weighted: bool) -> None:
        spec, reason, label = metric_spec(m)
        output = outputs[index] if index < len(outputs) else str(index)
        out.append(CompiledMetric(name, m, output, index, weighted, spec, reason, label))

    for weighted, flat in ((False, cm._flat_metrics), (True, cm._flat_weighted_metrics)):
        for index, mls in enumerate(flat):
            if not mls:
                continue
            for m in mls.metrics:
                name = _prefixed(mls.output_name, m.name)
                if weighted and name in counters:
                    name = _prefixed(mls.output_name, f"weighted_{m.name}")
                add(_unique(name, counters), m, index, weighted)
    return out
