"""Measurements of one area: facts about the data source (pipeline order, batch size)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class DataMeasurements:
    """Facts about the data source.

    path: the data's label (a file path, or what the Python API names an in-memory source);
    samples: how many samples every figure used; batch_size: the batch size every figure used
    (a pipeline's own); pipeline: the data is a pipeline that batches itself (tf.data, PyDataset, a
    function, TFRecord files); shuffled: the pipeline gave its samples in a different order on
    different passes (measured after every pass ran)."""

    path: str
    samples: int = 0
    batch_size: int | None = None
    pipeline: bool = False
    shuffled: bool = False
