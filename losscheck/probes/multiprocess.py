"""`--distribute multi-process`: Keras's own multi-process data parallelism (JAX, `keras.distribution`).

Every process joins the coordinator (`keras.distribution.initialize`) before anything runs on JAX, loads
the model and data as one process would and measures the one-process figures on its own; then all of
them together run Keras's own evaluate and one-epoch fit under `DataParallel` over every process's
devices, on a `tf.data.Dataset` batched at the global batch size (Keras shards it), from a fresh copy
of the saved weights. Each process also recomputes the numpy data loss on its own shard only; the
shards' sums and every process's figures are gathered to all processes, so each judges the same facts
and exits with the same code.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
from collections.abc import Iterator
from typing import Any

import numpy as np

from losscheck.core.errors import LosscheckError, UsageError
from losscheck.core.shards import ProcessSpec, ShardPlan, shard_plan, uneven_message, unsupported_backend
from losscheck.measurements.multiprocess import MultiProcessMeasurements, Shard

#: environment variable naming the file a worker started by `--local` writes its progress to
STATUS_ENV = "LOSSCHECK_WORKER_STATUS"
#: the figures every process reports for the others to compare (worker-disagreement)
COMPARED = ("evaluate", "manual", "evaluate_multiprocess", "fit_epoch_multiprocess")


def status(text: str) -> None:
    """Record this worker's stage for the launcher (which names it when the worker hangs)."""
    path = os.environ.get(STATUS_ENV)
    if path:
        try:
            with open(path, "a", encoding="utf-8") as f:
                f.write(text.replace("\n", " ")[:200] + "\n")
        except OSError:
            pass


def join(spec: ProcessSpec) -> None:
    """Join the coordinator as process `spec.process_id` of `spec.num_processes`: before the first
    JAX computation of this process (loading a model is one)."""
    from losscheck._tf import keras

    if keras.backend.backend() != "jax":
        raise UsageError(unsupported_backend(keras.backend.backend(), keras.__version__))
    status(f"joining {spec.coordinator} as process {spec.process_id} of {spec.num_processes}")
    try:
        keras.distribution.initialize(spec.coordinator, spec.num_processes, spec.process_id)
    except (RuntimeError, ValueError) as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
        raise UsageError(f"--distribute multi-process: process {spec.process_id} could not join the coordinator "
                         f"{spec.coordinator} ({first})") from exc
    status("joined")


def processes() -> tuple[int, int]:
    """(this process's id, the number of processes) of the joined run."""
    import jax

    return int(jax.process_index()), int(jax.process_count())


class ProcessLost(LosscheckError):
    """Another process of the run ended or became unreachable during a collective step."""


@contextlib.contextmanager
def collective(what: str) -> Iterator[None]:
    """Runs steps that need every process: a lost connection becomes one ProcessLost line."""
    try:
        yield
    except Exception as exc:  # noqa: BLE001 - JAX raises JaxRuntimeError (no public base) for a lost peer
        text = str(exc)
        if type(exc).__name__ not in ("JaxRuntimeError", "XlaRuntimeError") and "Gloo" not in text:
            raise
        first = (text.strip().splitlines() or [type(exc).__name__])[0][:160]
        raise ProcessLost(f"--distribute multi-process: {what} stopped: another process of the run ended or cannot "
                          f"be reached ({first})") from exc


def gather(values: list[float]) -> np.ndarray:
    """Every process's `values` (float64, exactly: sent as their bits), one row per process id."""
    from jax.experimental import multihost_utils

    bits = np.asarray(values, np.float64).view(np.uint32)
    with collective("gathering the processes' figures"):
        rows = np.asarray(multihost_utils.process_allgather(bits))
    return rows.reshape(rows.shape[0], -1).astype(np.uint32).view(np.float64)


def plan_for(cfg: Any, data: Any) -> tuple[ShardPlan, MultiProcessMeasurements | None]:
    """The shard plan of this run, and the record that stops it before any pass: processes that read
    different sample counts or batch sizes (worker-disagreement), or uneven shards; None to go on."""
    from losscheck._tf import keras

    _, count = processes()
    seen = gather([float(data.n), float(cfg.batch_size)])
    plan = shard_plan(data.n, cfg.batch_size, count)
    base = dict(processes=count, coordinator=cfg.processes.coordinator, backend=keras.backend.backend(),
                samples=data.n, batch_size=cfg.batch_size)
    if len({tuple(r) for r in seen.tolist()}) > 1:
        shards = tuple(Shard(p, int(r[0]), 0) for p, r in enumerate(seen))
        what = "; ".join(f"process {p}: {int(r[0])} samples at batch {int(r[1])}" for p, r in enumerate(seen))
        return plan, MultiProcessMeasurements(**base, shards=shards, mismatch=f"the processes read different data "
                                              f"({what}); give every process the same DATA file and --batch-size")
    if not plan.even:
        what, todo = uneven_message(plan)
        shards = tuple(Shard(p, s, k) for p, (s, k, _) in enumerate(plan.per_process))
        return plan, MultiProcessMeasurements(**base, even=False, uneven=what, todo=todo, shards=shards)
    return plan, None


def keras_dataset(data: Any, batch_size: int) -> Any:
    """The data as a tf.data.Dataset batched at the global batch size, in order: what Keras shards."""
    from losscheck._tf import tf

    xs, ys, sw = data.slice(0, data.n)
    x = xs[0] if len(xs) == 1 else tuple(xs)
    y = ys[0] if len(ys) == 1 else tuple(ys)
    parts = (x, y) if sw is None else (x, y, sw)
    return tf.data.Dataset.from_tensor_slices(parts).batch(batch_size)


def keras_figures(cfg: Any, data: Any, progress: Any) -> dict[str, float]:
    """Keras's own evaluate and one-epoch fit over every process (DataParallel over all devices), from
    a fresh copy of the saved weights: evaluate_multiprocess, fit_epoch_multiprocess."""
    from losscheck._tf import keras
    from losscheck.loading.inputs import load_inputs

    distribution = keras.distribution.DataParallel()
    out: dict[str, float] = {}
    with distribution.scope():
        copy, _ = load_inputs(dataclasses.replace(cfg, data_path=None), lambda _msg: None)
        model = copy.model
        status("evaluate_multiprocess")
        progress(f"Keras's evaluate over {distribution.device_mesh.devices.size} devices of every process")
        logs = model.evaluate(keras_dataset(data, cfg.batch_size), verbose=0, return_dict=True)
        if "loss" in logs:
            out["evaluate_multiprocess"] = float(np.asarray(logs["loss"]))
        if copy.optimizer_problem is None:
            status("fit_epoch_multiprocess")
            progress("Keras's one-epoch fit over every process")
            keras.utils.set_random_seed(cfg.seed)  # as the one-process fit probe: the same draws
            history = model.fit(keras_dataset(data, cfg.batch_size), epochs=1, shuffle=False, verbose=0,
                                class_weight=cfg.class_weight)
            losses = history.history.get("loss")
            if losses:
                out["fit_epoch_multiprocess"] = float(np.asarray(losses[0]))
    status("keras figures done")
    return out


def shard_sums(loaded: Any, data: Any, plan: ShardPlan, process: int, seed: int) -> tuple[float, float] | None:
    """(sum of this process's samples' shares of the data loss, sum of their weights), from the numpy
    reference on this process's shard only; None where a sample's share depends on the batch it is in
    (a mask, a reduction other than the mean over the batch) or the loss has no batch axis."""
    from losscheck.probes.breakdown.observers import SampleObserver
    from losscheck.probes.prober import Prober

    ranges = plan.shard_indices(process)
    cols = [data.slice(r.start, r.stop) for r in ranges]
    xs = [np.concatenate([c[0][i] for c in cols]) for i in range(len(data.x))]
    ys = [np.concatenate([c[1][i] for c in cols]) for i in range(len(data.y))]
    sw = None if data.sample_weight is None else np.concatenate([np.asarray(c[2]) for c in cols])
    shard = dataclasses.replace(data, x=xs, y=ys, sample_weight=sw, streamed=False, _handle=None, notes=[])
    prober = Prober(loaded, shard, plan.local_batch, seed)
    if any(s is not None and s.reduction != "sum_over_batch_size" for s in prober.specs.values()):
        return None
    observer = SampleObserver(prober, shard.n, top=0)
    try:
        prober.inference_pass([observer])
    except UsageError:
        return None
    if observer.masked:
        return None
    weights = float(shard.n) if sw is None else float(np.sum(np.asarray(sw, np.float64).reshape(shard.n, -1)[:, 0]))
    return float(np.sum(observer.losses)), weights


def measure_multiprocess(cfg: Any, loaded: Any, data: Any, figures: dict[str, float], progress: Any
                         ) -> tuple[MultiProcessMeasurements, list[str]]:
    """The multi-process record; adds evaluate_multiprocess, fit_epoch_multiprocess and manual_multiprocess
    (the shards' sums combined) to `figures`."""
    from losscheck._tf import keras

    me, count = processes()
    plan = shard_plan(data.n, cfg.batch_size, count)
    notes: list[str] = []
    with collective("Keras's evaluate and fit over every process"):
        mine = keras_figures(cfg, data, progress)
    progress("numpy recomputation on this process's shard")
    sums = shard_sums(loaded, data, plan, me, cfg.seed)
    row = [figures.get(k, np.nan) if k in ("evaluate", "manual") else mine.get(k, np.nan) for k in COMPARED]
    row += [np.nan, np.nan] if sums is None else list(sums)
    rows = gather(row)
    status("gathered")
    shards = []
    for p, r in enumerate(rows):
        samples, steps, _ = plan.per_process[p]
        own = tuple((k, float(v)) for k, v in zip(COMPARED, r[:len(COMPARED)], strict=True) if np.isfinite(v))
        loss_sum, weight_sum = (float(r[-2]), float(r[-1])) if np.isfinite(r[-2]) else (None, None)
        shards.append(Shard(p, samples, steps, loss_sum, weight_sum, own))
    manual = None
    if all(s.loss_sum is not None for s in shards):
        manual = sum(s.loss_sum for s in shards if s.loss_sum is not None) / data.n
        figures["manual_multiprocess"] = manual
    elif "manual" in figures:
        notes.append("--distribute multi-process: manual_multiprocess is not computed: a sample's share of the loss "
                     "depends on the batch it is in (a mask, or a reduction other than the mean over the batch)")
    figures.update(mine)
    notes.append(f"--distribute multi-process: {count} processes, a global "
                 f"batch of {cfg.batch_size} ({plan.local_batch} per process); evaluate_multiprocess and "
                 "fit_epoch_multiprocess are Keras's own over all of them")
    record = MultiProcessMeasurements(processes=count, coordinator=cfg.processes.coordinator,
                                      backend=keras.backend.backend(), samples=data.n, batch_size=cfg.batch_size,
                                      shards=tuple(shards), evaluate=mine.get("evaluate_multiprocess"),
                                      fit_epoch=mine.get("fit_epoch_multiprocess"), manual=manual)
    return record, notes


def stopped_measurements(cfg: Any, data: Any) -> Any:
    """The Measurements of a multi-process run that must stop before any pass (see plan_for), or None."""
    from losscheck._tf import keras
    from losscheck.measurements import Measurements
    from losscheck.measurements.parity import ParityMeasurements

    if data.pipeline:
        raise UsageError("--distribute multi-process takes a data file (.npz or .h5), not a pipeline or FILE.py:FUNC")
    _, stop = plan_for(cfg, data)
    if stop is None:
        return None
    parity = ParityMeasurements(backend=keras.backend.backend(), evaluate=float("nan"), multiprocess=stop)
    note = "--distribute multi-process: no pass was run, so that no process waits for another forever"
    return Measurements("compare", rtol=cfg.rtol, parity=parity, notes=(note,))
