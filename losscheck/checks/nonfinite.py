"""`non-finite` (error): where NaN/Inf first appears: an input, target or sample-weight array (which
array, which sample, which position), a weight of the model, a layer's output, or the loss itself."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from losscheck.findings import Finding
from losscheck.report.text import plural

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


def data_findings(data, evaluate: float | None = None) -> list[Finding]:
    out = []
    groups = [("input", "x", data.x, data.input_names), ("target", "y", data.y, data.output_names)]
    for what, prefix, arrays, names in groups:
        for i, arr in enumerate(arrays):
            hit = _first_bad(arr, data.n)
            if hit is None:
                continue
            sample, pos, count, kind = hit
            key = _array_key(prefix, names, i)
            where = f"sample {sample}" + (f", position {list(pos)}" if pos else "")
            out.append(Finding(
                "non-finite",
                f"The {what} array {key!r} holds {kind} at {where} ({count} non-finite value"
                f"{'s' if count != 1 else ''} in all)" + (
                    f"; the batch that contains it gives a non-finite loss, so evaluate ({evaluate}), fit and "
                    "the numpy reference are all non-finite." if evaluate is not None and not math.isfinite(evaluate)
                    else "; the reported loss stays finite here (the value is masked or weighted out), but any "
                         "gradient through it is not guaranteed to."),
                magnitude=float(count), subject=key,
                advice=f"Clean or drop sample {sample} (and the others: np.argwhere(~np.isfinite({key}))) before "
                       "training; Keras does not skip non-finite samples."))
    if getattr(data, "pipeline", False):
        return _pipeline_findings(data, evaluate)
    if data.sample_weight is not None:
        hit = _first_bad(data.sample_weight, data.n)
        if hit is not None:
            out.append(Finding("non-finite", f"sample_weight holds {hit[3]} at sample {hit[0]} ({hit[2]} in all).",
                               magnitude=float(hit[2]), subject="sample_weight",
                               advice="Give every sample a finite weight (0 to ignore it)."))
    return out


def _pipeline_findings(data, evaluate: float | None) -> list[Finding]:
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
                return [Finding("non-finite", f"The pipeline's {what} holds NaN or Inf at sample {start + row}; "
                                f"the batch that contains it gives a non-finite loss, so evaluate ({evaluate}), fit "
                                "and the numpy reference are all non-finite.", magnitude=float((~np.isfinite(a)).sum()),
                                subject=what.split(" ")[-1].strip("'"),
                                advice="Clean or drop the non-finite samples in the pipeline (e.g. a filter on "
                                       "tf.math.is_finite); Keras does not skip them.")]
    return []


def weight_findings(model) -> list[Finding]:
    from losscheck.probes import all_layers

    out = []
    for layer in all_layers(model):
        for v in getattr(layer, "weights", []):
            a = np.asarray(v)
            if a.dtype.kind == "f" and not np.all(np.isfinite(a)):
                out.append(Finding("non-finite", f"Weight {v.path!r} of layer {layer.name!r} holds "
                                   f"{int((~np.isfinite(a)).sum())} non-finite values: every output is poisoned.",
                                   magnitude=float((~np.isfinite(a)).sum()), subject=layer.name,
                                   advice="The saved weights diverged; restore an earlier checkpoint or lower the "
                                          "learning rate."))
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


def locate_in_model(ctx, start: int, stop: int) -> Finding | None:
    """On the first non-finite batch: the first layer whose output is non-finite, else the loss."""
    from losscheck._tf import keras

    model = ctx.loaded.model
    xs, ys, sw = ctx.data.slice(start, stop)
    x = xs[0] if len(xs) == 1 else xs
    tensors = []
    try:
        named = _layer_outputs(model)
        probe = keras.Model(model.inputs, [t for _, t in named])
        values = probe(x, training=False)
        values = values if isinstance(values, (list, tuple)) else [values]
        for (name, _), v in zip(named, values, strict=False):
            tensors.append((name, np.asarray(v)))
    except Exception:
        tensors = []
    for name, v in tensors:
        bad = ~np.isfinite(v)
        if bad.any():
            row = int(np.argwhere(bad)[0][0]) if v.ndim else 0
            return Finding("non-finite", f"The inputs are finite, but layer {name!r} outputs non-finite values "
                           f"first (sample {start + row}, {plural(int(bad.sum()), 'value')} in the batch {start}-{stop - 1}).",
                           subject=name, magnitude=float(bad.sum()),
                           advice="Check that layer's operation (log/sqrt/division of non-positive values, "
                                  "overflow in exp) or its weights.")
    preds = model(x, training=False)
    preds = preds if isinstance(preds, (list, tuple)) else [preds]
    if isinstance(preds, dict):
        preds = [preds[o] for o in ctx.loaded.output_names]
    for i, o in enumerate(ctx.loaded.output_names):
        p = np.asarray(preds[i])
        if not np.all(np.isfinite(p)):
            row = int(np.argwhere(~np.isfinite(p))[0][0])
            return Finding("non-finite", f"Output {o!r} is non-finite at sample {start + row}.", subject=o,
                           advice="Check the layers before this output.")
    from losscheck.checks.rank import call_loss

    for i, o in enumerate(ctx.loaded.output_names):
        loss = ctx.loaded.losses.get(o)
        if loss is None:
            continue
        try:
            vals = call_loss(loss, ys[i], np.asarray(preds[i]))
        except Exception:
            continue
        bad = ~np.isfinite(vals)
        if bad.any():
            where = (f" at sample {start + int(np.argwhere(bad)[0][0])}" if vals.ndim
                     else f" on the batch {start}-{stop - 1}")
            return Finding("non-finite", f"Inputs, weights and outputs are finite, but the loss of output {o!r} is "
                           f"non-finite{where}: the loss function itself produces it.", subject=o,
                           advice="Guard the loss's logs, square roots and divisions (clip, add epsilon).")
    return Finding("non-finite", f"The loss of the batch {start}-{stop - 1} is non-finite although inputs, weights, "
                   "outputs and each output's loss values are finite: the penalties (model.losses) or the reduction "
                   "(e.g. mean_with_sample_weight with zero weights) produce it.",
                   advice="Check regularizers and add_loss terms, and sample weights summing to 0.")


def check(ctx) -> list[Finding]:
    found = data_findings(ctx.data, ctx.inference.evaluate)
    if found:
        return found
    totals = ctx.inference.batch_totals
    bounds = list(ctx.data.batch_bounds(ctx.config.batch_size))
    for (_n, total), (start, stop) in zip(totals, bounds, strict=False):
        if not math.isfinite(total):
            f = locate_in_model(ctx, start, stop)
            return [f] if f is not None else []
    return []
