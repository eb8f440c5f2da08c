"""Non-finite location: where NaN/Inf first appears: an input, target or sample-weight array (which
array, which sample, which position), a weight of the model, a layer's output, or the loss itself."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from losscheck.measurements.lossfn import NonFiniteSite

CHUNK_BYTES = 16 * 2**20  # rows read at a time: about 16 MB, whatever the sample size


def _first_bad(array: Any, n: int) -> tuple[int, tuple[int, ...], int, str] | None:
    """(sample, position within the sample, count of non-finite values, 'NaN'|'Inf') or None."""
    first = None
    count = 0
    row_bytes = max(1, int(np.prod(array.shape[1:], dtype=np.int64)) * np.dtype(array.dtype).itemsize)
    chunk = max(1, CHUNK_BYTES // row_bytes)
    for start in range(0, n, chunk):
        block = np.asarray(array[start:start + chunk])
        if block.dtype.kind not in "fc":
            return None
        bad = ~np.isfinite(block)
        if not bad.any():
            continue
        count += int(bad.sum())
        if first is None:
            where = np.argwhere(bad)[0]
            value = block[tuple(where)]
            first = (start + int(where[0]), tuple(int(i) for i in where[1:]), "NaN" if np.isnan(value) else "Inf")
    if first is None:
        return None
    return first[0], first[1], count, first[2]


def _array_key(prefix: str, names: list[str], i: int) -> str:
    return prefix if len(names) == 1 else f"{prefix}_{names[i]}"




def data_sites(data, evaluate: float | None = None) -> list[NonFiniteSite]:
    """Every input and target array holding NaN/Inf (first sample, position, count), then the sample
    weights; for a pipeline, the first non-finite batch (scanned only when evaluate is non-finite)."""
    out = []
    groups = [("input", "x", data.x, data.input_names), ("target", "y", data.y, data.output_names)]
    for what, prefix, arrays, names in groups:
        for i, arr in enumerate(arrays):
            hit = _first_bad(arr, data.n)
            if hit is not None:
                sample, pos, count, kind = hit
                out.append(NonFiniteSite(what, name=_array_key(prefix, names, i), sample=sample, position=pos,
                                         count=count, kind=kind))
    if data.pipeline:
        return _pipeline_sites(data, evaluate)
    if data.sample_weight is not None:
        hit = _first_bad(data.sample_weight, data.n)
        if hit is not None:
            out.append(NonFiniteSite("sample_weight", name="sample_weight", sample=hit[0], count=hit[2], kind=hit[3]))
    return out


def _pipeline_sites(data, evaluate: float | None) -> list[NonFiniteSite]:
    """A pipeline is scanned (one more pass) only when the loss is non-finite: the first batch with a
    non-finite input, target or sample weight."""
    if evaluate is None or math.isfinite(evaluate):
        return []
    for start, _stop, xs, ys, sw in data.batches():
        named = [(f"input {n!r}", a) for n, a in zip(data.input_names, xs, strict=False)]
        named += [(f"target {n!r}", a) for n, a in zip(data.output_names, ys, strict=False)]
        named += [] if sw is None else [("sample_weight", sw)]
        for what, a in named:
            a = np.asarray(a)
            if a.dtype.kind == "f" and not np.all(np.isfinite(a)):
                row = int(np.argwhere(~np.isfinite(a))[0][0]) if a.ndim else 0
                return [NonFiniteSite("pipeline", name=what, sample=start + row, count=int((~np.isfinite(a)).sum()))]
    return []


def weight_sites(model) -> list[NonFiniteSite]:
    """The first non-finite variable of each layer."""
    from losscheck.probes.layers import all_layers

    out = []
    for layer in all_layers(model):
        for v in getattr(layer, "weights", []):
            a = np.asarray(v)
            if a.dtype.kind == "f" and not np.all(np.isfinite(a)):
                out.append(NonFiniteSite("weight", name=v.path, layer=layer.name, count=int((~np.isfinite(a)).sum())))
                break
    return out


def _layer_outputs(model) -> list[tuple[str, Any]]:
    found = []
    for layer in getattr(model, "layers", []):
        if type(layer).__name__ == "InputLayer":
            continue
        for node in getattr(layer, "_inbound_nodes", []):
            for t in node.output_tensors:
                found.append((layer.name, t))
    return found


def locate_in_model(loaded, data, start: int, stop: int) -> NonFiniteSite:
    """On the first non-finite batch: the first layer whose output is non-finite, else the output,
    else the loss values, else the penalties or the reduction. The state the model calls update is put
    back."""
    from losscheck.loading.memory import assigned_back, call_state_variables

    with assigned_back(call_state_variables(loaded.model)):
        return _locate_in_model(loaded, data, start, stop)


def _locate_in_model(loaded, data, start: int, stop: int) -> NonFiniteSite:
    from losscheck._tf import keras
    from losscheck.probes.lossfn.rank import call_loss

    model = loaded.model
    xs, ys, sw = data.slice(start, stop)
    x = xs[0] if len(xs) == 1 else xs
    batch = (start, stop)
    tensors = []
    try:
        named = _layer_outputs(model)
        probe = keras.Model(model.inputs, [t for _, t in named])
        values = probe(x, training=False)
        values = values if isinstance(values, (list, tuple)) else [values]
        for (name, _), v in zip(named, values, strict=False):
            tensors.append((name, np.asarray(v)))
    except Exception:  # noqa: BLE001 - no per-layer model (subclassed): the outputs and the loss are checked
        tensors = []
    for name, v in tensors:
        bad = ~np.isfinite(v)
        if bad.any():
            row = int(np.argwhere(bad)[0][0]) if v.ndim else 0
            return NonFiniteSite("layer", layer=name, sample=start + row, count=int(bad.sum()), batch=batch)
    preds = model(x, training=False)
    preds = preds if isinstance(preds, (list, tuple)) else [preds]
    if isinstance(preds, dict):
        preds = [preds[o] for o in loaded.output_names]
    for i, o in enumerate(loaded.output_names):
        p = np.asarray(preds[i])
        if not np.all(np.isfinite(p)):
            row = int(np.argwhere(~np.isfinite(p))[0][0])
            return NonFiniteSite("output", name=o, sample=start + row, batch=batch)
    for i, o in enumerate(loaded.output_names):
        loss = loaded.losses.get(o)
        if loss is None:
            continue
        try:
            vals = call_loss(loss, ys[i], np.asarray(preds[i]))
        except Exception:  # noqa: BLE001 - a loss that cannot be called here is passed over
            continue
        bad = ~np.isfinite(vals)
        if bad.any():
            return NonFiniteSite("loss", name=o, sample=start + int(np.argwhere(bad)[0][0]) if vals.ndim else None,
                                 batch=batch)
    return NonFiniteSite("penalties", batch=batch)


def measure(loaded, data, batch_size: int, inf) -> list[NonFiniteSite]:
    """The data's non-finite values; when the data is finite but a batch loss is not, where in the
    model that batch first turns non-finite."""
    found = data_sites(data, inf.evaluate)
    if found:
        return found
    bounds = list(data.batch_bounds(batch_size))
    for (_n, total), (start, stop) in zip(inf.batch_totals, bounds, strict=False):
        if not math.isfinite(total):
            return [locate_in_model(loaded, data, start, stop)]
    return []
