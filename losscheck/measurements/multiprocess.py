"""Measurements of a multi-process run (`--distribute multi-process`): how the data is dealt out to
the processes, Keras's own figures over all of them, and each process's shard statistics."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Shard:
    """One process's shard: its samples and steps, the sum of its samples' weighted losses (each
    sample's share of its batch's data loss, so that sum over all shards / samples = manual) and the
    sum of its sample weights (its sample count without weights); None where not computed. `figures`:
    Keras's multi-process figures as this process read them (evaluate_multiprocess, fit_epoch_multiprocess)."""

    process: int
    samples: int
    steps: int
    loss_sum: float | None = None
    weight_sum: float | None = None
    figures: tuple[tuple[str, float], ...] = ()


@dataclass(frozen=True)
class MultiProcessMeasurements:
    """processes: how many; coordinator: process 0's HOST:PORT; backend: the Keras backend;
    samples / batch_size: the data and the global batch; even: every process gets the same steps
    with batches of the same size (else `uneven` says what would happen and `todo` what to do, and no
    pass was run); mismatch: why the processes cannot run together (they read different data; no pass
    was run), empty otherwise; shards: one per process, in process order; evaluate / fit_epoch: Keras's own
    evaluate and one-epoch fit over all processes (process 0's reading); manual: the numpy data loss
    combined from the shards' sums (None where a shard's sum could not be computed)."""

    processes: int
    coordinator: str
    backend: str
    samples: int
    batch_size: int
    even: bool = True
    uneven: str = ""
    todo: str = ""
    mismatch: str = ""
    shards: tuple[Shard, ...] = ()
    evaluate: float | None = None
    fit_epoch: float | None = None
    manual: float | None = None
