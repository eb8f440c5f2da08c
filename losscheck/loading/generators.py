"""Python generators as data. A generator yields its batches once: it is read whole, once
(`read_generator`, within GENERATOR_MEMORY, and refused when it loops), and its batches, held in
memory, become a PyDataset seen as a PipelineDataset, so that every figure and Keras's own fit and
evaluate see the same batches."""

from __future__ import annotations

import contextlib
import hashlib
import sys
import types
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from losscheck.core.errors import LosscheckError, UsageError, first_line
from losscheck.loading.archive import available_memory
from losscheck.loading.arrays import as_numpy
from losscheck.loading.data import NPZ_MEMORY_SHARE
from losscheck.loading.h5_guard import size_text
from losscheck.loading.pipelines import PipelineDataset

#: a Python generator is read once and its batches held in memory: at most this many batches and
#: bytes of them (and at most the share of the available memory an .npz may take)
GENERATOR_BATCHES, GENERATOR_MEMORY = 100_000, 2 << 30


def is_generator(value: Any) -> bool:
    """A Python generator, as model.fit accepts one (Keras takes no other iterator)."""
    return isinstance(value, types.GeneratorType)


def _stored(value: Any) -> Any:
    """A batch with its arrays copied to numpy (a generator may refill one buffer between batches),
    its structure (tuples, lists, dicts, None) kept."""
    if value is None:
        return None
    if isinstance(value, dict):
        return {k: _stored(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        items = [_stored(v) for v in value]
        return items if isinstance(value, list) else tuple(items)
    return np.array(as_numpy(value), copy=True)


def _leaves(value: Any) -> Iterator[np.ndarray]:
    if isinstance(value, dict):
        for v in value.values():
            yield from _leaves(v)
    elif isinstance(value, (list, tuple)):
        for v in value:
            yield from _leaves(v)
    elif value is not None:
        yield value


def _digest(batch: Any) -> bytes:
    h = hashlib.sha1()
    for a in _leaves(batch):
        h.update(f"{a.dtype.str}{a.shape}".encode())
        h.update(np.ascontiguousarray(a).data if a.dtype.kind != "O" else repr(a.tolist()).encode())
    return h.digest()


def _batches_word(n: int) -> str:
    return f"{n} batch" if n == 1 else f"{n} batches"


def read_generator(gen: Any, label: str) -> list[Any]:
    """Every batch the generator yields, copied, in order. A generator that yields its first batches
    again (a `while True` loop over the data, which Keras runs only with steps=) or whose batches pass
    the memory bound is refused with one line saying how to bound it; its exceptions are usage errors."""
    limit = int(min(GENERATOR_MEMORY, NPZ_MEMORY_SHARE * available_memory()))
    batches: list[Any] = []
    digests: list[bytes] = []
    held, period = 0, 0  # period: the length of the repeat being followed (0: none)
    try:
        while True:
            try:
                with contextlib.redirect_stdout(sys.stderr):  # stdout is the report's
                    batch = next(gen)
            except StopIteration:
                return batches
            except LosscheckError:
                raise
            except BaseException as exc:
                if isinstance(exc, KeyboardInterrupt):
                    raise
                raise UsageError(f"{label}: the generator failed at batch {len(batches) + 1}: "
                                 f"{type(exc).__name__}: {first_line(exc)}") from exc
            batch = _stored(batch)
            i, digest = len(batches), _digest(batch)
            if period and digest != digests[i - period]:
                period = 0
            if not period and i and digest == digests[0]:
                period = i
            if period and i == 2 * period - 1:
                raise UsageError(f"{label}: the generator yields its first {_batches_word(period)} again from batch "
                                 f"{period + 1} on: it loops over the data without end (Keras runs such a generator "
                                 f"only with steps={period}); losscheck reads one pass, so let the generator stop "
                                 f"after {_batches_word(period)} (e.g. `for _ in range(steps)` instead of "
                                 "`while True`)")
            held += sum(int(a.nbytes) for a in _leaves(batch))
            if held > limit or i + 1 > GENERATOR_BATCHES:
                raise UsageError(f"{label}: the generator yielded {_batches_word(i + 1)} ({size_text(held)}) without "
                                 f"ending; losscheck reads a generator once and holds its batches in memory, at most "
                                 f"{GENERATOR_BATCHES} batches and {size_text(limit)}: if it never ends (Keras needs "
                                 "steps= for such a generator), let it stop after one pass over the data; for more "
                                 "data return a keras.utils.PyDataset or a tf.data.Dataset, which losscheck streams")
            batches.append(batch)
            digests.append(digest)
    finally:
        with contextlib.suppress(Exception):
            gen.close()


def generator_dataset(gen: Any, input_names: Sequence[str], output_names: Sequence[str],
                      label: str = "<generator>") -> PipelineDataset:
    """A Python generator's batches (read once, see read_generator) as a PipelineDataset over a
    PyDataset holding them: every figure, and the fit and evaluate Keras runs, take the same batches
    in the order the generator yielded them."""
    from losscheck._tf import keras

    class GeneratorBatches(keras.utils.PyDataset):
        """The batches a generator yielded, in order."""

        def __init__(self, batches: list[Any]) -> None:
            super().__init__()
            self.batches = batches

        def __len__(self) -> int:
            return len(self.batches)

        def __getitem__(self, index: int) -> Any:
            return self.batches[index]

    batches = read_generator(gen, label)
    data = PipelineDataset(GeneratorBatches(batches), input_names, output_names, label)
    data.generator = True
    held = sum(int(a.nbytes) for b in batches for a in _leaves(b))
    data.notes.append(f"{label}: a Python generator, read once: its {_batches_word(len(batches))} ({data.n} "
                      f"samples, {size_text(held)}) are held in memory, and every figure, Keras's own evaluate and "
                      "fit included, uses them in the order it yielded them")
    return data

