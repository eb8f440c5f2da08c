"""Input pipelines (tf.data.Dataset, keras PyDataset) as a `PipelineDataset`, which offers the
DataSource interface the probes use (`batches`, `batch_bounds`, `slice`, `n`; loading/source.py) by
iterating the pipeline batch by batch, with the pipeline's own batching; it never holds more than the
batch being processed (`slice` concatenates only the rows it was asked for).

Every batch of a pipeline is `x`, `(x, y)` or `(x, y, sample_weight)` as Keras's fit accepts it; `x`
and `y` are one array, a list/tuple in the model's input/output order, or a dict keyed by input /
output names.
"""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, cast

import numpy as np

from losscheck.core.errors import DataFileError, UsageError, first_line
from losscheck.loading.arrays import as_numpy, columns
from losscheck.loading.source import DataSource, Pipeline

#: the first batches whose targets fingerprint a pass's order (shuffle detection)
FINGERPRINT_BATCHES = 2


def is_pipeline(value: Any) -> bool:
    """A tf.data.Dataset or a keras.utils.PyDataset (checked without importing TensorFlow first)."""
    if isinstance(value, (str, Path, tuple, list, dict, np.ndarray)):
        return False
    from losscheck._tf import keras, tf

    return isinstance(value, (tf.data.Dataset, keras.utils.PyDataset))


class PipelineDataset:
    """A tf.data.Dataset or PyDataset seen through the DataSource interface (a Pipeline, see
    loading/source.py), streamed batch by batch."""

    streamed = True
    pipeline = True

    def __init__(self, source: Any, input_names: Sequence[str], output_names: Sequence[str],
                 label: str | None = None) -> None:
        from losscheck._tf import keras, tf

        self.source = source
        self.is_tf_data = isinstance(source, tf.data.Dataset)
        self.path = Path(label or ("<tf.data.Dataset>" if self.is_tf_data else f"<{type(source).__name__}>"))
        self.input_names, self.output_names = list(input_names), list(output_names)
        self.x: list[Any] = []  # no whole arrays: see batches()
        self.y: list[Any] = []
        self.keys: tuple[list[str], list[str]] = ([], [])
        self.notes: list[str] = []
        self.generator = False  # the batches a Python generator yielded (see generator_dataset)
        self._sizes: list[int] | None = None
        self.fingerprints: list[str] = []
        if self.is_tf_data:
            card = int(source.cardinality())
            if card == int(tf.data.INFINITE_CARDINALITY):
                raise UsageError(f"{self.path}: the dataset is infinite (repeat() without a count); pass a finite "
                                 "one, e.g. dataset.take(steps)")
        else:
            if not isinstance(source, keras.utils.PyDataset):
                raise UsageError(f"{self.path}: not a tf.data.Dataset or keras.utils.PyDataset")
            if self._num_batches() is None:
                raise UsageError(f"{self.path}: the PyDataset has no length (infinite); give it a __len__")
        first = next(self._elements(), None)
        if first is None:
            raise DataFileError(self.path, "yields no batches", "pass a pipeline with at least one batch")
        _xs, _ys, sw = self._split(first)
        self.has_sample_weight = sw is not None

    # -- iteration -----------------------------------------------------------------------------
    def _num_batches(self) -> int | None:
        n = getattr(self.source, "num_batches", None)
        if n is None:
            try:
                n = len(self.source)
            except TypeError:
                return None
        return None if n is None else int(n)

    def _elements(self) -> Iterator[Any]:
        if self.is_tf_data:
            from losscheck._tf import tf

            iterator = iter(self.source)
            while True:
                try:
                    element = next(iterator)
                except StopIteration:
                    return
                except tf.errors.OpError as exc:  # a damaged record, a parse function failing on one
                    raise DataFileError(self.path, f"the pipeline failed while reading ({type(exc).__name__}: "
                                        f"{first_line(exc)})", "check the files and the parse function") from exc
                yield element
        else:
            for i in range(self._num_batches() or 0):
                yield self.source[i]

    def _split(self, element: Any) -> tuple[list[np.ndarray], list[np.ndarray], np.ndarray | None]:
        from losscheck._tf import keras

        if isinstance(element, list):
            element = tuple(element)
        if not isinstance(element, tuple) or not 2 <= len(element) <= 3:
            raise DataFileError(self.path, "yields batches without targets; each batch must be (x, y) or "
                                "(x, y, sample_weight)", "map the pipeline to (inputs, targets) pairs")
        x, y, sw = keras.utils.unpack_x_y_sample_weight(element)
        if y is None:
            raise DataFileError(self.path, "yields batches whose targets are None", "map it to (inputs, targets)")
        where = str(self.path)
        xs = [as_numpy(a) for a in columns(x, self.input_names, "input", where)]
        ys = [as_numpy(a) for a in columns(y, self.output_names, "output", where)]
        if isinstance(sw, (dict, list, tuple)):
            if len(sw) != 1:
                raise UsageError(f"{where}: one sample_weight array per batch is supported, not one per output")
            sw = next(iter(sw.values())) if isinstance(sw, dict) else sw[0]
        return xs, ys, None if sw is None else as_numpy(sw)

    def batches(self, batch_size: int | None = None, limit: int | None = None
                ) -> Iterator[tuple[int, int, list[np.ndarray], list[np.ndarray], np.ndarray | None]]:
        """(start, stop, xs, ys, sample_weight) per batch of the pipeline (its own batch size; the
        argument is ignored), for the first `limit` samples (the last batch cut there). A full pass
        records the batch sizes; every pass records the fingerprint of its first batches' targets."""
        start, sizes = 0, []
        digest = hashlib.sha1()
        for i, element in enumerate(self._elements()):
            xs, ys, sw = self._split(element)
            n = int(xs[0].shape[0]) if xs[0].ndim else 1
            if i < FINGERPRINT_BATCHES:
                for a in ys:
                    digest.update(np.ascontiguousarray(a).tobytes())
                if i == FINGERPRINT_BATCHES - 1:
                    self.fingerprints.append(digest.hexdigest())
            if limit is not None and start + n >= limit:
                cut = limit - start
                yield start, limit, [a[:cut] for a in xs], [a[:cut] for a in ys], None if sw is None else sw[:cut]
                if start + n > limit:
                    return
            else:
                yield start, start + n, xs, ys, sw
            sizes.append(n)
            start += n
            if limit is not None and start >= limit:
                return
        if len(sizes) < FINGERPRINT_BATCHES:
            self.fingerprints.append(digest.hexdigest())
        self._sizes = sizes

    @property
    def sizes(self) -> list[int]:
        if self._sizes is None:
            for _ in self.batches():
                pass
        assert self._sizes is not None
        return self._sizes

    @property
    def n(self) -> int:
        return sum(self.sizes)

    @property
    def batch_size(self) -> int:
        return self.sizes[0]

    @property
    def sample_weight(self) -> Any:
        """Only whether there are sample weights (`is not None`); the values come with each batch."""
        return True if self.has_sample_weight else None

    def batch_bounds(self, batch_size: int | None = None, limit: int | None = None) -> Iterator[tuple[int, int]]:
        start = 0
        for n in self.sizes:
            if limit is not None and start >= limit:
                return
            yield start, start + n if limit is None else min(start + n, limit)
            start += n

    def slice(self, start: int, stop: int) -> tuple[list[np.ndarray], list[np.ndarray], np.ndarray | None]:
        """Rows start:stop, read by iterating the pipeline up to them."""
        parts: list[tuple[list[np.ndarray], list[np.ndarray], np.ndarray | None]] = []
        for b0, b1, xs, ys, sw in self.batches(limit=stop):
            lo, hi = max(start, b0) - b0, min(stop, b1) - b0
            if lo < hi:
                parts.append(([a[lo:hi] for a in xs], [a[lo:hi] for a in ys], None if sw is None else sw[lo:hi]))
        if not parts:
            raise DataFileError(self.path, f"has no rows {start}:{stop}", "check the pipeline")
        xs = [np.concatenate([p[0][i] for p in parts]) for i in range(len(parts[0][0]))]
        ys = [np.concatenate([p[1][i] for p in parts]) for i in range(len(parts[0][1]))]
        sw = None if parts[0][2] is None else np.concatenate([p[2] for p in parts])
        return xs, ys, sw

    def keras_input(self) -> Any:
        """What model.fit receives: the pipeline itself."""
        return self.source

    def order_changed(self) -> bool:
        """Whether passes over the pipeline gave its batches in different orders (it shuffles): the
        passes so far, plus one more look at the first batches."""
        for _ in itertools.islice(self.batches(), FINGERPRINT_BATCHES):
            pass
        return len(set(self.fingerprints)) > 1

    def close(self) -> None:
        pass


def data_measurements(data: DataSource, batch_size: int) -> Any:
    """The data facts the data rules read (a DataMeasurements). Call it after every pass: whether a
    pipeline shuffles is told by the orders its passes gave (and one more look at its first batches).
    `batch_size`: the one arrays are batched by (a pipeline batches itself)."""
    from losscheck.measurements.data import DataMeasurements

    pipeline = bool(data.pipeline)
    return DataMeasurements(path=str(getattr(data, "path", "")), samples=int(data.n),
                            batch_size=cast(Pipeline, data).batch_size if pipeline else batch_size,
                            pipeline=pipeline, shuffled=pipeline and cast(Pipeline, data).order_changed())


