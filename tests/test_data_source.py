"""The data-source protocol (loading/source.py): a data file's Dataset, an h5 file's, and a pipeline's
PipelineDataset (tf.data, a generator's batches) offer every member of DataSource, `pipeline` and
`generator` telling them apart, and give the same batches for the same samples."""

from __future__ import annotations

import inspect

import numpy as np
import pytest

from losscheck.loading.source import DataSource, Pipeline

N, BATCH = 10, 4


def _members(protocol: type) -> set[str]:
    names = {n for n, _ in inspect.getmembers(protocol) if not n.startswith("_")}
    return names | {n for cls in protocol.__mro__ for n in getattr(cls, "__annotations__", {})}


def _arrays():
    rng = np.random.default_rng(0)
    return rng.normal(size=(N, 3)).astype("float32"), rng.normal(size=(N, 1)).astype("float32")


def _batches(data):
    return [(a, b, xs[0].tolist(), ys[0].tolist()) for a, b, xs, ys, _ in data.batches(BATCH)]


def test_a_data_file_is_a_data_source(tmp_path):
    import h5py

    from losscheck.loading.data import load_data

    x, y = _arrays()
    np.savez(tmp_path / "d.npz", x=x, y=y)
    with h5py.File(tmp_path / "d.h5", "w") as f:
        f["x"], f["y"] = x, y
    npz, h5 = load_data(tmp_path / "d.npz", ["x"], ["y"]), load_data(tmp_path / "d.h5", ["x"], ["y"])
    for data in (npz, h5):
        assert _members(DataSource) <= set(dir(data))
        assert not data.pipeline and not data.generator and data.n == N and data.sample_weight is None
    assert not npz.streamed and h5.streamed
    assert _batches(npz) == _batches(h5)
    assert list(npz.batch_bounds(BATCH, limit=6)) == [(0, 4), (4, 6)]
    h5.close()


@pytest.mark.keras
def test_pipelines_are_data_sources_that_batch_themselves():
    import tensorflow as tf

    from losscheck.loading.arrays import arrays_dataset
    from losscheck.loading.generators import generator_dataset
    from losscheck.loading.pipelines import PipelineDataset

    x, y = _arrays()
    arrays = arrays_dataset(x, y, None, ["x"], ["y"])
    ds = tf.data.Dataset.from_tensor_slices((x, y)).batch(BATCH)
    pipe = PipelineDataset(ds, ["x"], ["y"])
    gen = generator_dataset(((x[i:i + BATCH], y[i:i + BATCH]) for i in range(0, N, BATCH)), ["x"], ["y"])
    for data in (pipe, gen):
        assert _members(Pipeline) <= set(dir(data))
        assert data.pipeline and data.streamed and data.n == N and data.batch_size == BATCH
        assert _batches(data) == _batches(arrays)
        xs, _, _ = data.slice(3, 6)
        assert xs[0].tolist() == x[3:6].tolist()
    assert pipe.keras_input() is ds and not pipe.generator and gen.generator
    assert not arrays.pipeline and not pipe.order_changed()
