"""The penalties in `evaluate`, per layer: weight regularizers (trainable weights only, as Keras 3
counts them) and, when those do not account for the whole penalty, an eager pass that collects each
layer's own activity-regularizer / add_loss terms, batch-size-weighted like evaluate."""

from __future__ import annotations

from typing import Any

import numpy as np

from losscheck.reference import EpochMean


def _weight_penalties(model) -> list[dict[str, Any]]:
    from losscheck.probes.layers import all_layers

    trainable = {id(v) for v in model.trainable_weights}
    rows = []
    for layer in [model, *all_layers(model)]:
        own = [v for v in getattr(layer, "_trainable_variables", [])
               if id(v) in trainable and getattr(v, "regularizer", None) is not None]
        if not own:
            continue
        value = sum(float(np.asarray(v.regularizer(v))) for v in own)
        rows.append({"layer": layer.name, "kind": "weights", "penalty": value,
                     "variables": [v.path if hasattr(v, "path") else v.name for v in own]})
    return rows


def _activity_penalties(prober) -> list[dict[str, Any]]:
    from losscheck.probes.batching import data_batches, structure
    from losscheck.probes.layers import all_layers

    model = prober.model
    layers = [model, *all_layers(model)]
    means = {id(lyr): EpochMean() for lyr in layers}
    for start, stop, xs, _ys, _sw in data_batches(prober.data, prober.batch_size):
        model(structure(xs), training=False)
        for layer in layers:
            own = layer._get_own_losses()
            means[id(layer)].add(sum(float(np.sum(np.asarray(t))) for t in own), stop - start)
    rows = []
    for layer in layers:
        value = means[id(layer)].value
        if value != 0.0:
            kind = "activity" if getattr(layer, "activity_regularizer", None) is not None else "add_loss"
            rows.append({"layer": layer.name, "kind": kind, "penalty": value})
    return rows


def regularization_by_layer(prober, total: float) -> list[dict[str, Any]]:
    """Rows {layer, kind, penalty} that add up to `total` (evaluate's penalty term); a remainder that
    no layer accounts for is reported as its own row."""
    rows = _weight_penalties(prober.model)
    rest = total - sum(r["penalty"] for r in rows)
    if abs(rest) > 1e-7 * max(abs(total), 1e-12) and total != 0.0:
        rows += _activity_penalties(prober)
        rest = total - sum(r["penalty"] for r in rows)
        if abs(rest) > 1e-6 * max(abs(total), 1e-12):
            rows.append({"layer": None, "kind": "unattributed", "penalty": rest})
    return rows
