"""Loss-function checks: rank/batch-axis probe, batch-size dependence, channels-first axis,
from_logits mismatch, non-finite values, label smoothing, reduction trace.

Hooks called by compare/inspect:
  static_checks(loaded)            -> findings that need no data (inspect and compare)
  data_checks(ctx)                 -> findings (+ report sections) that need data (compare)
  inference_observers(loaded)      -> observers compare attaches to its one inference pass, so the
                                      reduction trace and output ranges need no pass of their own

One module per check (rank, batchsize, axis, logits, nonfinite, smoothing) plus the reduction trace.
static_checks keeps its findings and probe results on the loaded model (common.memo) so that
data_checks confirms and measures them instead of reporting them twice.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from losscheck.findings import Finding


@dataclass
class CheckContext:
    """What data-dependent checks may use: the loaded model, the data, the prober (to run passes), the
    inference result and the config. Checks add report sections into `sections`."""

    loaded: Any
    data: Any
    prober: Any
    inference: Any
    config: Any
    sections: dict[str, Any] = field(default_factory=dict)


def _safely(errors: list[str], what: str, fn, *args) -> Any:
    """A check that fails must not take compare down: record it as a note and go on."""
    try:
        return fn(*args)
    except Exception as exc:  # noqa: BLE001 - any failure of one check is reported, not raised
        errors.append(f"check {what} could not run ({type(exc).__name__}: {str(exc).splitlines()[0][:200]})"
                      if str(exc) else f"check {what} could not run ({type(exc).__name__})")
        return None


def static_checks(loaded) -> list[Finding]:
    from losscheck.checks import axis, logits, nonfinite, rank, smoothing
    from losscheck.checks.common import memo, output_losses, synthetic_pool

    store = memo(loaded)
    if "static" in store:
        return store["static"]
    errors: list[str] = store.setdefault("errors", [])
    outputs = _safely(errors, "outputs", output_losses, loaded) or []
    store["outputs"] = outputs
    by_code: dict[str, dict[str, list[Finding]]] = {}
    found: list[Finding] = list(_safely(errors, "non-finite weights", nonfinite.weight_findings, loaded.model) or [])
    store["weights_non_finite"] = bool(found)
    probes: dict[str, Any] = {}
    for ol in outputs:
        per: list[Finding] = []
        pools = _safely(errors, f"loss-rank ({ol.name})", synthetic_pool, ol)
        result = None
        if pools is not None:
            try:
                result = rank.probe(ol, *pools)
            except Exception:  # noqa: BLE001 - synthetic shapes may not fit a custom loss: retried with data
                result = None
        probes[ol.name] = result
        if result is not None and not result.ok:
            per.append(rank.finding(ol, result))
        per += _safely(errors, "channels-first-axis", axis.check, ol) or []
        per += _safely(errors, "from-logits-mismatch", logits.static_check, ol) or []
        per += _safely(errors, "label-smoothing", smoothing.check, ol) or []
        for f in per:
            by_code.setdefault(f.code, {}).setdefault(ol.name, []).append(f)
        found += per
    store["rank"] = probes
    store["by_code"] = by_code
    store["static"] = found
    return found


def inference_observers(loaded) -> list[Any]:
    """The reduction-trace and output-range observers, kept for data_checks."""
    from losscheck.checks import logits
    from losscheck.checks.common import memo
    from losscheck.checks.trace import TraceObserver

    store = memo(loaded)
    if "static" not in store:
        static_checks(loaded)
    outputs = store["outputs"]
    observers = (TraceObserver(outputs), logits.LogitsObserver(outputs))
    store["observers"] = observers
    return list(observers)


def data_checks(ctx: CheckContext) -> list[Finding]:
    from losscheck.checks import batchsize, logits, nonfinite, smoothing
    from losscheck.checks.common import memo
    from losscheck.checks.trace import TraceObserver

    loaded = ctx.loaded
    store = memo(loaded)
    if "static" not in store:
        static_checks(loaded)
    errors: list[str] = store["errors"]
    outputs = store["outputs"]
    by_code: dict[str, dict[str, list[Finding]]] = store["by_code"]
    out: list[Finding] = []

    if not store.get("weights_non_finite"):
        out += _safely(errors, "non-finite", nonfinite.check, ctx) or []
    finite = math.isfinite(ctx.inference.evaluate) and not out and not store.get("weights_non_finite")
    if not finite:
        if errors:
            ctx.sections["check_notes"] = list(errors)
        return out

    # loss-rank on real targets/outputs for losses the synthetic probe could not call
    retry = [ol for ol in outputs if store["rank"].get(ol.name) is None]
    if retry:
        out += _safely(errors, "loss-rank", _rank_on_data, ctx, retry, store, by_code) or []

    # reduction trace and output ranges: observed on compare's inference pass when it attached them,
    # else one more inference pass at the configured batch size
    if "observers" in store:
        trace, lg = store["observers"]
        inf = ctx.inference
    else:
        trace, lg = TraceObserver(outputs), logits.LogitsObserver(outputs)
        inf = _safely(errors, "reduction trace", ctx.prober.inference_pass, [trace, lg])
    if inf is not None:
        for ol in lg.outputs:
            static = by_code.get("from-logits-mismatch", {}).get(ol.name, [])
            out += _safely(errors, "from-logits-mismatch", logits.data_check, ol, lg.stats[ol.name], static) or []
    for ol in outputs:
        smoothing.enrich(by_code.get("label-smoothing", {}).get(ol.name, []), ctx.inference.output_loss.get(ol.name))

    probe = _safely(errors, "batch-size-dependence", batchsize.measure, ctx)
    if probe is not None:
        ranked = by_code.get("loss-rank", {})
        explained = {o: "loss-rank" for o in ranked}
        for o, items in ranked.items():
            a, b = probe.per_output.get(o, (math.nan, math.nan))
            if batchsize.moved(a, b, ctx.config.rtol):
                items[0].message += (f" Measured on the data: this output's loss is {a:.6g} at batch "
                                     f"{probe.batch_size} and {b:.6g} at batch {probe.other_batch_size} "
                                     f"(x{b / a:.4g}).")
        reductions = {ol.name: ol.spec.reduction for ol in outputs}
        masked = frozenset(o for o, tr in trace.outputs.items() if tr.masked)
        out += batchsize.check(probe, ctx.config.rtol, explained, reductions, masked,
                               ctx.data.sample_weight is not None)

    if inf is not None:
        section = trace.section(ctx.inference.evaluate)
        if probe is not None:
            section["batch_size_probe"] = probe.as_section()
        ctx.sections["reduction_trace"] = section
    if errors:
        ctx.sections["check_notes"] = list(errors)
    return out


def _rank_on_data(ctx: CheckContext, retry: list[Any], store: dict[str, Any],
                  by_code: dict[str, dict[str, list[Finding]]]) -> list[Finding]:
    from losscheck.checks import rank
    from losscheck.checks.common import data_pool

    xs, ys, _ = ctx.data.slice(0, min(ctx.data.n, 32))
    preds = ctx.loaded.model(xs[0] if len(xs) == 1 else xs, training=False)
    if isinstance(preds, dict):
        preds = [preds[o] for o in ctx.loaded.output_names]
    preds = preds if isinstance(preds, (list, tuple)) else [preds]
    out = []
    for ol in retry:
        pools = data_pool(ys[ol.index], preds[ol.index])
        result = _safely(store["errors"], f"loss-rank ({ol.name})", rank.probe, ol, *pools)
        store["rank"][ol.name] = result
        if result is not None and not result.ok:
            f = rank.finding(ol, result)
            by_code.setdefault("loss-rank", {}).setdefault(ol.name, []).append(f)
            out.append(f)
    return out
