"""Training vs validation data: `--val VAL` read, or DATA cut by `--validation-split F`.

--validation-split F reproduces Keras (trainers/data_adapters/array_slicing.train_validation_split):
split_at = floor(n * (1 - F)); T = rows [0, split_at), V = rows [split_at, n), before any shuffling.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np

from losscheck.core.errors import UsageError


def split_index(n: int, fraction: float) -> int:
    """Keras's split point: floor(n * (1 - fraction)); both parts must be non-empty (`fraction` is
    between 0 and 1, checked with the options)."""
    at = int(math.floor(n * (1.0 - fraction)))
    if at == 0 or at == n:
        raise UsageError(f"--validation-split {fraction}: the data has {n} samples, too few to split into a "
                         "training and a validation part (Keras raises ValueError too); use a larger fraction "
                         "or more data")
    return at


class RowView:
    """Rows [start, stop) of an array or h5py dataset, sliced lazily (h5 rows are read only on access)."""

    def __init__(self, base: Any, start: int, stop: int) -> None:
        self.base, self.start, self.stop = base, start, stop
        self.shape = (stop - start, *tuple(base.shape[1:]))
        self.dtype = base.dtype
        self.ndim = len(self.shape)

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, key: Any) -> Any:
        if isinstance(key, slice):
            a, b, step = key.indices(self.shape[0])
            if step != 1:
                raise IndexError("RowView supports contiguous slices only")
            return self.base[self.start + a:self.start + max(a, b)]
        if isinstance(key, (int, np.integer)):
            i = int(key) + (self.shape[0] if key < 0 else 0)
            return self.base[self.start + i]
        raise IndexError("RowView supports integer and slice indexing only")

    def __array__(self, dtype=None, copy=None):
        a = np.asarray(self.base[self.start:self.stop])
        return a if dtype is None else a.astype(dtype)


def _rows(a: Any, start: int, stop: int) -> Any:
    if a is None:
        return None
    return a[start:stop] if isinstance(a, np.ndarray) else RowView(a, start, stop)


def split_dataset(data, fraction: float):
    """(training part, validation part) of a Dataset, as Keras's validation_split cuts it."""
    at = split_index(data.n, fraction)
    n = data.n

    def part(start: int, stop: int, handle: Any):
        return dataclasses.replace(
            data, x=[_rows(a, start, stop) for a in data.x], y=[_rows(a, start, stop) for a in data.y],
            sample_weight=_rows(data.sample_weight, start, stop), _handle=handle)

    return part(0, at, data._handle), part(at, n, None), at


def validation_inputs(cfg, loaded, data, validation_data, input_names: list[str], progress):
    """(training data, validation data, split_at or None) for compare: --validation-split cuts DATA,
    --val loads a file, `validation_data` is an already loaded Dataset; the Python API's inputs
    (cfg.inputs) load their own `validation_data=` (arrays, a pipeline, a file) against the model.
    The options were checked (preflight.check_validation) before."""
    if cfg.validation_split is not None:
        if data.pipeline:
            raise UsageError("--validation-split needs array data (an .npz or .h5 file), as fit's validation_split "
                             "does (Keras raises ValueError for datasets and generators); pass --val instead")
        return split_dataset(data, cfg.validation_split)
    if validation_data is not None:
        return data, validation_data, None
    from losscheck.loading.inputs import with_data_notes

    if getattr(cfg.inputs, "validation", None) is not None:
        progress(f"reading {cfg.val_path}")
        return data, with_data_notes(loaded, cfg.inputs.load_validation(loaded)), None
    from losscheck.loading.data import load_data

    progress(f"reading {cfg.val_path}")
    return data, with_data_notes(loaded, load_data(cfg.val_path, input_names, loaded.output_names, model=loaded)), None
