"""Loss-function measurements: what each compiled loss is and returns, non-finite values, output
ranges, the batch-size rerun and the reduction trace; the rules in losscheck.rules.lossfn judge them.

    static = measure_static(loaded)         no data: the outputs' losses, the rank probe on synthetic
                                            tensors, non-finite weights (inspect and compare share it)
    static.measurements()                   -> LossFnMeasurements without data (inspect)
    obs = LossFnObservers.of(static)        attach obs.all() to compare's one inference pass
    measure_data(static, obs, loaded, data, batch_size, seed, inf) -> LossFnMeasurements

A measurement that fails is recorded as one line in `errors` (the check_notes section) and the run
goes on.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from losscheck.measurements import frozen_mapping
from losscheck.measurements.lossfn import LossFnMeasurements, NonFiniteSite, OutputLossRecord, RankRecord
from losscheck.probes.lossfn import batchsize, nonfinite, rank
from losscheck.probes.lossfn.outputs import OutputLoss, data_pool, output_losses, synthetic_pool
from losscheck.probes.lossfn.persample import PerSampleObserver
from losscheck.probes.lossfn.ranges import RangeObserver
from losscheck.probes.lossfn.trace import TraceObserver


def _safely(errors: list[str], what: str, fn: Callable[..., Any], *args: Any) -> Any:
    """A measurement that fails must not take the run down: record it as a note and go on."""
    try:
        return fn(*args)
    except Exception as exc:  # noqa: BLE001 - any failure of one measurement is reported, not raised
        errors.append(f"check {what} could not run ({type(exc).__name__}: {str(exc).splitlines()[0][:200]})"
                      if str(exc) else f"check {what} could not run ({type(exc).__name__})")
        return None


@dataclass(frozen=True)
class StaticLossFn:
    """The measurements that need no data. outputs: the Keras side (for the data measurements);
    records: output -> its record, with the rank probe on synthetic tensors when they fit."""

    outputs: tuple[OutputLoss, ...]
    records: dict[str, OutputLossRecord]
    non_finite_weights: tuple[NonFiniteSite, ...]
    errors: tuple[str, ...]

    def measurements(self) -> LossFnMeasurements:
        return LossFnMeasurements(outputs=frozen_mapping(self.records), non_finite_weights=self.non_finite_weights,
                                  errors=self.errors)


def measure_static(loaded) -> StaticLossFn:
    """Each output's loss facts and rank probe (synthetic tensors of its shape), the model's non-finite
    weights."""
    errors: list[str] = []
    outputs = _safely(errors, "outputs", output_losses, loaded) or []
    weights = _safely(errors, "non-finite weights", nonfinite.weight_sites, loaded.model) or []
    records: dict[str, OutputLossRecord] = {}
    for ol in outputs:
        pools = _safely(errors, f"loss-rank ({ol.name})", synthetic_pool, ol)
        result = None
        if pools is not None:
            try:
                result = rank.probe(ol, *pools)
            except Exception:  # noqa: BLE001 - synthetic shapes may not fit a custom loss: retried with data
                result = None
        record = _safely(errors, f"loss facts ({ol.name})", ol.record)
        if record is not None:
            records[ol.name] = dataclasses.replace(record, rank=result)
    return StaticLossFn(tuple(ol for ol in outputs if ol.name in records), records, tuple(weights), tuple(errors))


@dataclass(frozen=True)
class LossFnObservers:
    """The observers compare attaches to its inference pass: the reduction trace, the output ranges and
    the per-sample form of batch-level built-in losses."""

    trace: TraceObserver
    ranges: RangeObserver
    per_sample: PerSampleObserver

    @classmethod
    def of(cls, static: StaticLossFn) -> LossFnObservers:
        outputs = list(static.outputs)
        return cls(TraceObserver(outputs), RangeObserver(outputs), PerSampleObserver(outputs))

    def all(self) -> list[Any]:
        return [self.trace, self.ranges, self.per_sample]


def _rank_on_data(loaded, data, retry: list[OutputLoss], errors: list[str]) -> dict[str, RankRecord | None]:
    """The rank probe on the first samples' real targets and outputs (one model call; the state it
    updates is put back)."""
    from losscheck.loading.memory import assigned_back, call_state_variables

    xs, ys, _ = data.slice(0, min(data.n, 32))
    with assigned_back(call_state_variables(loaded.model)):
        preds = loaded.model(xs[0] if len(xs) == 1 else xs, training=False)
    if isinstance(preds, dict):
        preds = [preds[o] for o in loaded.output_names]
    preds = preds if isinstance(preds, (list, tuple)) else [preds]
    out = {}
    for ol in retry:
        pools = data_pool(ys[ol.index], preds[ol.index])
        out[ol.name] = _safely(errors, f"loss-rank ({ol.name})", rank.probe, ol, *pools, True)
    return out


def measure_data(static: StaticLossFn, obs: LossFnObservers, loaded, data, batch_size: int, seed: int,
                 inf, reported: bool = True) -> LossFnMeasurements:
    """Everything the data adds, `inf` being the inference pass `obs` observed: where NaN/Inf sits;
    and, when the loss is finite, the rank probe on real outputs for losses synthetic tensors did not
    fit, the output ranges, each output's loss (and the per-sample form of a batch-level built-in), the
    batch-size rerun and the reduction trace. With `reported` False (the model's own steps compute the
    reported loss, not the compiled one) only where NaN/Inf sits: the batch-size rerun and the trace
    would describe a loss Keras does not report."""
    errors = list(static.errors)
    records = dict(static.records)
    non_finite = None
    if not static.non_finite_weights:
        non_finite = tuple(_safely(errors, "non-finite", nonfinite.measure, loaded, data, batch_size, inf) or ())
    if not reported or not math.isfinite(inf.evaluate) or non_finite or static.non_finite_weights:
        return LossFnMeasurements(outputs=frozen_mapping(records), non_finite_weights=static.non_finite_weights,
                                  non_finite=non_finite, errors=tuple(errors))

    retry = [ol for ol in static.outputs if records[ol.name].rank is None]
    if retry:
        ranked = _safely(errors, "loss-rank", _rank_on_data, loaded, data, retry, errors) or {}
        for name, result in ranked.items():
            records[name] = dataclasses.replace(records[name], rank=result)
    ranges = {ol.name: obs.ranges.stats[ol.name].record() for ol in obs.ranges.outputs}
    for name, record in records.items():
        per_sample = obs.per_sample.value(name)
        records[name] = dataclasses.replace(
            record, ranges=ranges.get(name), loss=inf.output_loss.get(name),
            per_sample_loss=None if per_sample is None else per_sample[0],
            per_sample_axes=None if per_sample is None else per_sample[1])

    probe = _safely(errors, "batch-size-dependence", batchsize.measure, loaded, data, batch_size, seed, inf)
    section = obs.trace.section(inf.evaluate)
    if probe is not None:
        section["batch_size_probe"] = probe.as_section()
    return LossFnMeasurements(
        outputs=frozen_mapping(records), non_finite_weights=static.non_finite_weights, non_finite=non_finite,
        batch_size=probe,
        masked=frozenset(o for o, tr in obs.trace.outputs.items() if tr.masked),
        weighted=data.sample_weight is not None, errors=tuple(errors), reduction_trace=frozen_mapping(section))
