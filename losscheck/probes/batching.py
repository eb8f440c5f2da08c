"""Batches as the passes and Keras's own fit and evaluate take them: the data's batches (a pipeline
its own), class weights as fit turns them into sample weights, the --probe-samples subset, and an h5
file's batches read on demand for Keras (`H5Sequence`)."""

from __future__ import annotations

from typing import Any

import numpy as np

from losscheck._tf import keras
from losscheck.core.config import Config
from losscheck.loading.source import DataSource


def floatx(a: np.ndarray) -> np.ndarray:
    a = np.asarray(a)
    if np.issubdtype(a.dtype, np.floating) and a.dtype != np.dtype(keras.backend.floatx()):
        return a.astype(keras.backend.floatx())
    return a


def structure(arrays: list[np.ndarray]) -> Any:
    return arrays[0] if len(arrays) == 1 else list(arrays)


def class_weight_sample_weights(y: np.ndarray, class_weight: dict[int, float]) -> np.ndarray:
    """Keras's class_weight -> sample_weight: argmax of one-hot y (last dim > 1), else round(squeeze(y));
    classes missing from the map weigh 1.0."""
    y = np.asarray(y)
    labels = np.argmax(y, axis=-1) if y.ndim > 1 and y.shape[-1] > 1 else np.round(y.reshape(y.shape[0], -1)[:, 0])
    return np.array([class_weight.get(int(c), 1.0) for c in labels.reshape(-1)], dtype="float32")


def data_batches(data, batch_size: int, limit: int | None = None):
    """(start, stop, xs, ys, sample_weight) per batch: the data's own `batches` (a pipeline streams
    them), else rows sliced by `batch_bounds` (any object with `slice` and `batch_bounds`)."""
    batches = getattr(data, "batches", None)
    if batches is not None:
        yield from batches(batch_size, limit)
        return
    for start, stop in data.batch_bounds(batch_size, limit):
        yield (start, stop, *data.slice(start, stop))


def probe_limit(cfg: Config, n: int) -> int | None:
    """--probe-samples as given (the subset is batched as fit batches it, its last batch may be
    smaller), None for all samples."""
    if cfg.probe_samples is None or cfg.probe_samples >= n:
        return None
    return cfg.probe_samples


class H5Sequence(keras.utils.PyDataset):
    """Batches read from an h5 file on demand (the file may be larger than memory)."""

    def __init__(self, data: DataSource, batch_size: int, class_weight=None) -> None:
        super().__init__()
        self.data, self.batch_size, self.class_weight = data, batch_size, class_weight
        self.bounds = list(data.batch_bounds(batch_size))

    def __len__(self) -> int:
        return len(self.bounds)

    def __getitem__(self, i: int):
        xs, ys, sw = self.data.slice(*self.bounds[i])
        if self.class_weight:
            sw = class_weight_sample_weights(ys[0], self.class_weight)
        # tuples, not lists: PyDataset builds its output signature from the first batch, and a list of
        # arrays there is not a valid structure (multi-input/-output models on h5 data failed)
        x = xs[0] if len(xs) == 1 else tuple(xs)
        y = ys[0] if len(ys) == 1 else tuple(ys)
        return (x, y) if sw is None else (x, y, sw)
