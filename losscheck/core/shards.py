"""How Keras's multi-process data parallelism deals a dataset out to the processes, in pure Python.

Under `keras.distribution.DataParallel` over several processes, Keras shards a `tf.data.Dataset`
batched at the global batch size B: it rebatches it to the per-process batch b = B / P and gives
process i the rebatched batches i, i + P, i + 2P, ... (`Distribution.distribute_tf_dataset`). Every
step is one collective over all processes, so the processes must run the same number of steps with
batches of the same size; otherwise the process with a batch more waits for the others forever.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ProcessSpec:
    """One process of a multi-process run: the coordinator (HOST:PORT of process 0), the number of
    processes and this one's id (0 .. num_processes - 1)."""

    coordinator: str
    num_processes: int
    process_id: int


@dataclass(frozen=True)
class ShardPlan:
    """What each process gets of `samples` samples at global batch `batch_size` over `processes`
    processes: `per_process` (samples, steps, batch sizes) per process id, and whether every process
    gets the same steps with batches of the same size (`even`)."""

    samples: int
    batch_size: int
    processes: int
    per_process: tuple[tuple[int, int, tuple[int, ...]], ...]

    @property
    def local_batch(self) -> int:
        """The per-process batch size B / P (B when P does not divide B)."""
        return self.batch_size // self.processes if self.batch_size % self.processes == 0 else self.batch_size

    @property
    def divisible(self) -> bool:
        """The global batch size is a multiple of the number of processes (Keras refuses it otherwise)."""
        return self.batch_size % self.processes == 0

    @property
    def even(self) -> bool:
        """Every process runs the same batches' sizes, step for step."""
        return self.divisible and len({sizes for _, _, sizes in self.per_process}) == 1

    def shard_indices(self, process: int) -> list[range]:
        """The sample ranges process `process` gets, in order (one per step)."""
        b = self.local_batch
        out, start = [], 0
        for piece, size in enumerate(_pieces(self.samples, self.batch_size, b)):
            if piece % self.processes == process:
                out.append(range(start, start + size))
            start += size
        return out


def _pieces(samples: int, batch_size: int, local: int) -> list[int]:
    """The sizes of the rebatched batches, in order: each global batch cut into per-process batches."""
    out: list[int] = []
    for start in range(0, samples, batch_size):
        size = min(batch_size, samples - start)
        out += [local] * (size // local) + ([size % local] if size % local else [])
    return out


def shard_plan(samples: int, batch_size: int, processes: int) -> ShardPlan:
    """The plan for `samples` samples at global batch `batch_size` over `processes` processes."""
    local = batch_size // processes if batch_size % processes == 0 else batch_size
    pieces = _pieces(samples, batch_size, local)
    per = []
    for p in range(processes):
        mine = tuple(pieces[p::processes])
        per.append((sum(mine), len(mine), mine))
    return ShardPlan(samples, batch_size, processes, tuple(per))


def uneven_message(plan: ShardPlan) -> tuple[str, str]:
    """(what would happen, what to do) for an uneven plan."""
    n, B, P = plan.samples, plan.batch_size, plan.processes
    if not plan.divisible:
        what = (f"the global batch size {B} is not a multiple of the {P} processes, so Keras cannot split a batch "
                f"into equal per-process batches (it raises before the first step)")
        return what, f"use a --batch-size that is a multiple of {P} (e.g. {max(P, B - B % P)})"
    steps = [s for _, s, _ in plan.per_process]
    most = max(steps)
    ahead = [p for p, (_, s, _) in enumerate(plan.per_process) if s == most]
    behind = [p for p, (_, s, _) in enumerate(plan.per_process) if s < most]
    parts = [f"process {p}: {plan.per_process[p][0]} samples in {plan.per_process[p][1]} steps"
             for p in range(P)]
    r = n % B
    if behind:
        last = plan.per_process[ahead[0]][2][-1]
        done = sum(plan.per_process[behind[0]][2]) * P
        wait = (f"process {_names(ahead)} would run step {most} on its last {last} sample(s) and wait forever "
                f"(a deadlock) for process {_names(behind)}, which stop(s) after {most - 1} steps and report(s) a loss "
                f"over {done} samples, leaving out the last {n - done}")
    else:
        wait = ("the last step's per-process batches differ in size ("
                + ", ".join(f"process {p}: {plan.per_process[p][2][-1]}" for p in range(P))
                + "), which Keras cannot assemble into one global batch")
    what = (f"{n} samples at a global batch of {B} over {P} processes ({'; '.join(parts)}): {wait}")
    keep = n - r
    divisors = [d for d in range(B, 0, -1) if n % d == 0 and d % P == 0]
    todo = f"use a sample count that is a multiple of {B} (e.g. the first {keep} samples)" if keep else \
        f"use at least {B} samples"
    if divisors:
        todo += f", or a --batch-size that divides {n} and is a multiple of {P} (e.g. {divisors[0]})"
    todo += ("; in your own training, drop the remainder (dataset.batch(B, drop_remainder=True)) or pad the "
             "last batch with zero-weight samples")
    return what, todo


def unsupported_backend(backend: str, keras_version: str) -> str:
    """Why `--distribute multi-process` does not run on `backend` (one line)."""
    if backend == "tensorflow":
        return (f"--distribute multi-process runs on the JAX backend (--backend jax): on TensorFlow, Keras "
                f"{keras_version}'s own evaluate and fit fail under MultiWorkerMirroredStrategy "
                "(keras-team/keras#20585: the input batch and the scalar metrics are reduced across workers "
                "along the batch axis), so there is no Keras figure to compare with")
    return f"--distribute multi-process runs on the JAX backend (--backend jax), not on {backend}"


def _names(ids: list[int]) -> str:
    return ", ".join(map(str, ids))
