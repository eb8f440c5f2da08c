"""What every data source offers the probes, written down: `DataSource`, which a data file's or
in-memory arrays' `Dataset` (loading/data.py) and a pipeline's `PipelineDataset` (loading/pipelines.py)
both implement, and `Pipeline`, what a PipelineDataset offers besides (`pipeline` True).

A new kind of data source implements DataSource; the passes read data only through it. No TensorFlow
import here.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

#: rows of every array: (xs, ys, sample_weight), one array per model input and per output
Rows = tuple[list[np.ndarray], list[np.ndarray], np.ndarray | None]
#: one batch: (start, stop, xs, ys, sample_weight)
Batch = tuple[int, int, list[np.ndarray], list[np.ndarray], np.ndarray | None]


class DataSource(Protocol):
    """Samples aligned with the model's inputs and outputs, read batch by batch."""

    path: Path  # what messages call the data (a file, or a label such as <tf.data.Dataset>)
    input_names: list[str]
    output_names: list[str]
    notes: list[str]  # what reading the data left out or how it was read, for the report's notes

    @property
    def streamed(self) -> bool:
        """Read batch by batch, never whole (an .h5 file, a pipeline); else arrays in memory."""
        ...

    @property
    def pipeline(self) -> bool:
        """A pipeline (tf.data.Dataset, PyDataset, a generator's batches), which batches itself: its
        `batches` ignore the batch size, and fit/evaluate receive `keras_input()` (see Pipeline)."""
        ...

    @property
    def generator(self) -> bool:
        """The batches a Python generator yielded (read once; fit refuses class_weight with one)."""
        ...

    @property
    def n(self) -> int:
        """The number of samples."""
        ...

    @property
    def sample_weight(self) -> Any:
        """The sample weights (None without); for a pipeline only whether there are any."""
        ...

    def slice(self, start: int, stop: int) -> Rows:
        """Rows start:stop of every array."""
        ...

    def batch_bounds(self, batch_size: int, limit: int | None = None) -> Iterator[tuple[int, int]]:
        """(start, stop) of each batch, up to `limit` samples."""
        ...

    def batches(self, batch_size: int, limit: int | None = None) -> Iterator[Batch]:
        """(start, stop, xs, ys, sample_weight) of each batch, up to `limit` samples."""
        ...

    def close(self) -> None:
        ...


class Pipeline(DataSource, Protocol):
    """A DataSource whose `pipeline` is True: it batches itself, and Keras's own fit and evaluate
    consume it directly."""

    @property
    def batch_size(self) -> int:
        """The pipeline's own batch size (its first batch's)."""
        ...

    def keras_input(self) -> Any:
        """What model.fit / model.evaluate receive."""
        ...

    def order_changed(self) -> bool:
        """Whether passes over it gave its batches in different orders (it shuffles)."""
        ...


if TYPE_CHECKING:  # mypy checks here that both data sources implement the protocol
    from losscheck.loading.data import Dataset
    from losscheck.loading.pipelines import PipelineDataset

    def _implemented(data: Dataset, pipeline: PipelineDataset) -> tuple[DataSource, DataSource, Pipeline]:
        return data, pipeline, pipeline
