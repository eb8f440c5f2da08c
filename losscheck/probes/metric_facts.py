"""What the compiled metrics' observers and Keras's own values gave in one inference pass, as the
frozen record the metric rules read (rules/metrics.py)."""

from __future__ import annotations

import math
from typing import Any

from losscheck.measurements import frozen_mapping
from losscheck.measurements.metrics import (
    ClassIdFacts,
    MetricFacts,
    MetricMeasurements,
    OutputFacts,
    ThresholdFacts,
)
from losscheck.probes.metrics import MetricsObserver, thresholds_of


def _number(value: Any) -> float | None:
    """A finite int or float as float; None for anything else (a list, NaN, Inf, None)."""
    return float(value) if isinstance(value, (int, float)) and math.isfinite(float(value)) else None


def _float(value: Any) -> float | None:
    return None if value is None else float(value)


def metric_measurements(obs: MetricsObserver, targets: Any, inf: Any, loaded: Any, data: Any) -> MetricMeasurements:
    """What the metric and target rules read, from the observers of one inference pass `inf` (with
    metrics=True). A per-batch metric is computed on the whole dataset here, once, only when Keras
    gave a number for it."""
    values = inf.metrics or {}
    specs = loaded.specs
    metrics = []
    for track in obs.tracks or []:
        e = track.entry
        kv = _number(values.get(e.name))
        spec = specs.get(e.output)
        dataset = None
        if kv is not None and track.scalar:
            try:
                dataset = obs.dataset_value(track)
            except Exception:  # noqa: BLE001 - the user's function may not run on the whole dataset at once
                dataset = None
        threshold = class_ids = None
        if track.alt is not None and track.error is None and e.spec is not None:
            alt = track.alt.result()
            half = track.half.result() if track.half is not None else None
            threshold = ThresholdFacts(thresholds_of(e.spec), float(alt) if isinstance(alt, (int, float)) else None,
                                       float(half) if isinstance(half, (int, float)) else None)
        ids = track.ids
        if ids is not None and ids.values:
            on_ids = ids.acc.result() if ids.error is None else None
            class_ids = ClassIdFacts(ids.values, ids.non_integer, ids.how,
                                     float(on_ids) if isinstance(on_ids, (int, float)) else None)
        metrics.append(MetricFacts(
            name=e.name, label=e.label, output=e.output, weighted=e.weighted, keras=kv,
            same_as_loss=spec is not None and e.spec is not None and e.spec.kind == f"loss:{spec.kind}",
            scalar=bool(track.scalar), batch_sizes=tuple(track.batch_sizes), dataset=dataset, threshold=threshold,
            class_ids=class_ids))
    outputs = {}
    for o in loaded.output_names:
        rng = obs.ranges.get(o)
        outputs[o] = OutputFacts(
            name=o, has_loss=specs.get(o) is not None, loss_weight=float(loaded.loss_weights.get(o, 1.0)),
            data_loss=_float(inf.output_loss.get(o)), keras_log=_float(inf.output_loss_keras_log.get(o)),
            masked=o in obs.masked, binary_targets=obs.binary_targets.get(o, False),
            activation=obs.activations.get(o), value_range=None if rng is None else (rng[0], rng[1]))
    return MetricMeasurements(metrics=tuple(metrics), outputs=frozen_mapping(outputs),
                              sample_weighted=data.sample_weight is not None, targets=targets.facts())

