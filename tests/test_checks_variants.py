"""Variants of the issue-4 bugs beyond the fixtures: other shapes, other ways to lose the batch axis,
other activations and layouts, non-finite values in other places. Models are built here, saved and
loaded back through losscheck as a user's file would be."""

from __future__ import annotations

import textwrap
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import run_cli

pytestmark = pytest.mark.keras

CHECK_CODES = {"loss-rank", "batch-size-dependence", "channels-first-axis", "from-logits-mismatch", "non-finite",
               "label-smoothing"}

LOSSES = textwrap.dedent('''
    import keras
    import tensorflow as tf
    from keras import ops


    def sum_axis0(y_true, y_pred):
        return tf.reduce_sum(tf.square(y_true - y_pred), axis=0)


    def mean_everything(y_true, y_pred):
        return ops.mean(ops.square(y_true - y_pred))


    def scalar_sum(y_true, y_pred):
        return ops.sum(ops.abs(y_true - y_pred))


    def transposed(y_true, y_pred):
        return ops.transpose(ops.square(y_true - y_pred))


    def third_column(y_true, pred):
        return ops.mean(ops.square(y_true[:, 2] - pred[:, 2]), axis=-1)


    def last_feature_ellipsis(y_true, yz):
        return ops.sum(ops.square(y_true[..., -1] - yz[..., -1]), axis=-1)


    def take_column(y_true, y_pred):
        return ops.sum(ops.square(ops.take(y_true, 1, axis=1) - ops.take(y_pred, 1, axis=1)), axis=-1)


    def mean_sparse_ce(labels, probs):
        return ops.mean(keras.losses.sparse_categorical_crossentropy(labels, probs))


    def sum_batch_and_time(y_true, y_pred):
        return ops.sum(ops.square(y_true - y_pred), axis=(0, 1))


    def third_column_kept(y_true, pred):
        return ops.mean(ops.square(y_true[:, 2:3] - pred[:, 2:3]), axis=-1)


    def elementwise(y_true, y_pred):
        return ops.square(y_true - y_pred)


    def first_feature_per_step(y_true, y_pred):
        return ops.mean(ops.square(y_true[:, :, 0] - y_pred[:, :, 0]), axis=-1)


    def log_of_pred(y_true, y_pred):
        return ops.mean(ops.log(y_pred) - y_true, axis=-1)


    class ScalarLoss(keras.losses.Loss):
        def call(self, y_true, y_pred):
            return ops.sum(ops.square(y_true - y_pred))


    class GoodLoss(keras.losses.Loss):
        def call(self, y_true, y_pred):
            return ops.mean(ops.square(y_true - y_pred), axis=-1)


    class LogLayer(keras.layers.Layer):
        def call(self, x):
            return ops.log(x)


    class Normalize(keras.layers.Layer):
        def call(self, x):
            e = ops.exp(x - ops.max(x, axis=-1, keepdims=True))
            return e / ops.sum(e, axis=-1, keepdims=True)
''')


@pytest.fixture(scope="module")
def losses(tmp_path_factory):
    import importlib.util

    d = tmp_path_factory.mktemp("variants")
    path = d / "my_losses.py"
    path.write_text(LOSSES)
    spec = importlib.util.spec_from_file_location("variant_losses", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return d, path, mod


def _dense(out_shape: tuple[int, ...], activation=None, n_in: int = 4):
    import keras

    L = keras.layers
    keras.utils.set_random_seed(0)
    inp = keras.Input((n_in,), name="x")
    h = L.Dense(int(np.prod(out_shape)), activation=activation, name="dense")(inp)
    if len(out_shape) > 1:
        h = L.Reshape(out_shape, name="shape")(h)
    return keras.Model(inp, h)


def _save(d: Path, name: str, model, loss, n: int = 40, y=None, x=None) -> tuple[Path, Path]:
    model.compile("sgd", loss)
    rng = np.random.default_rng(1)
    if x is None:
        x = rng.normal(size=(n,) + tuple(model.inputs[0].shape[1:])).astype("float32")
    if y is None:
        y = rng.uniform(0.1, 0.9, size=(n,) + tuple(model.outputs[0].shape[1:])).astype("float32")
    mpath, dpath = d / f"{name}.keras", d / f"{name}.npz"
    model.save(mpath)
    np.savez(dpath, x=x, y=y)
    return mpath, dpath


def _codes(res) -> set[str]:
    return {f["code"] for f in res.json["findings"]} & CHECK_CODES


def _static(path: Path, custom: Path | None = None):
    from losscheck.loading.model import load_model
    from losscheck.measurements import Measurements
    from losscheck.probes.lossfn import measure_static
    from losscheck.rules import judge_areas

    lossfn = measure_static(load_model(path, custom_objects_file=custom)).measurements()
    return list(judge_areas(Measurements("inspect", lossfn=lossfn), ("lossfn",)))


# -- loss-rank: ways to lose the batch axis -------------------------------------------------------------
LOST = {
    "sum_axis0": ((3,), "the batch axis is gone", "sum"),
    "mean_everything": ((3,), "returns a scalar", "averages"),
    "scalar_sum": ((2, 3), "returns a scalar", "sums"),
    "transposed": ((3,), "moved to axis 1", None),
    "third_column": ((4,), "returns a scalar", "averages"),
    "sum_batch_and_time": ((5, 4), "the batch axis is gone", "sum"),
    "ScalarLoss": ((6,), "returns a scalar", "sums"),
    "last_feature_ellipsis": ((3,), "returns a scalar", "sums"),
    "take_column": ((2,), "returns a scalar", "sums"),
}


@pytest.mark.parametrize("fn", sorted(LOST))
def test_loss_rank_catches_lost_batch_axis(losses, fn):
    d, path, mod = losses
    shape, how, reduce = LOST[fn]
    loss = getattr(mod, fn)
    m, _ = _save(d, f"rank_{fn}", _dense(shape), loss() if isinstance(loss, type) else loss)
    found = [f for f in _static(m, path) if f.code in CHECK_CODES]
    assert [f.code for f in found] == ["loss-rank"], [f.message for f in found]
    f = found[0]
    assert how in f.message
    if reduce == "sums":
        assert "sums over the batch" in f.message and f.magnitude == pytest.approx(32.0, rel=1e-3)
    elif reduce == "averages":
        assert "averages over the batch" in f.message and f.magnitude == pytest.approx(1.0, rel=1e-3)
    if fn == "third_column":
        assert "pred[:, 2] drops axis 1" in f.message and "(32, 4) -> (32,)" in f.message
        assert f.advice.startswith("Slice with pred[:, 2:3] (and y_true[:, 2:3])")
    if fn == "last_feature_ellipsis":
        assert "yz[..., -1] drops axis 1" in f.message and "yz[..., -1:]" in f.advice
    if fn == "take_column":
        assert "drops axis 1" in f.message and "y_pred[:, 1:]" in f.advice
    if fn in ("sum_axis0", "sum_batch_and_time"):
        assert "includes the batch axis" in f.message


@pytest.mark.parametrize("fn,shape", [("third_column_kept", (4,)), ("elementwise", (3,)),
                                      ("first_feature_per_step", (5, 4)), ("GoodLoss", (2, 3))])
def test_loss_rank_accepts_per_sample_losses(losses, fn, shape):
    d, path, mod = losses
    loss = getattr(mod, fn)
    m, _ = _save(d, f"ok_{fn}", _dense(shape), loss() if isinstance(loss, type) else loss)
    assert not [f for f in _static(m, path) if f.code in CHECK_CODES]


def test_builtin_losses_pass_the_rank_probe(tmp_path):
    import keras

    for i, (loss, act, shape) in enumerate([("mse", None, (3,)), ("huber", None, (5, 2)),
                                             ("binary_crossentropy", "sigmoid", (4,)),
                                             ("categorical_crossentropy", "softmax", (5,)),
                                             (keras.losses.SparseCategoricalCrossentropy(), "softmax", (3,)),
                                             ("kl_divergence", "softmax", (3,)), ("poisson", "softplus", (2,))]):
        m, _ = _save(tmp_path, f"builtin{i}", _dense(shape, act), loss)
        assert not [f.message for f in _static(m) if f.code in CHECK_CODES]


# -- channels-first layouts -------------------------------------------------------------------------------
def test_permuted_sequence_is_channels_first(tmp_path):
    import keras

    L = keras.layers
    inp = keras.Input((6, 3), name="x")
    h = L.Dense(5, name="features")(inp)  # (batch, 6 steps, 5 features)
    out = L.Permute((2, 1), name="time_last")(h)  # (batch, 5, 6): features first
    m, _ = _save(tmp_path, "perm", keras.Model(inp, out), "mae")
    found = [f for f in _static(m) if f.code in CHECK_CODES]
    assert [f.code for f in found] == ["channels-first-axis"]
    assert "5 features on axis 1" in found[0].message and "time_last" in found[0].message


def test_reshaped_image_shape_is_channels_first(tmp_path):
    m, _ = _save(tmp_path, "reshape", _dense((3, 8, 8)), "mse")
    assert [f.code for f in _static(m) if f.code in CHECK_CODES] == ["channels-first-axis"]


def test_channels_last_and_explicit_axis_are_fine(tmp_path):
    import keras

    L = keras.layers
    inp = keras.Input((8, 8, 2), name="x")
    out = L.Conv2D(3, 3, padding="same", name="conv")(inp)  # (batch, 8, 8, 3)
    m, _ = _save(tmp_path, "nhwc", keras.Model(inp, out), "mse")
    assert not [f for f in _static(m) if f.code in CHECK_CODES]
    inp = keras.Input((6, 3), name="x")
    out = L.Permute((2, 1), name="p")(L.Dense(4, activation="sigmoid", name="d")(inp))
    m, _ = _save(tmp_path, "axis1", keras.Model(inp, out), keras.losses.BinaryCrossentropy(axis=1))
    assert not [f for f in _static(m) if f.code in CHECK_CODES]


# -- from_logits -------------------------------------------------------------------------------------------
def test_sigmoid_and_softmax_layers_with_from_logits(tmp_path):
    import keras

    L = keras.layers
    inp = keras.Input((4,), name="x")
    out = L.Activation("sigmoid", name="act")(L.Dense(3, name="d")(inp))
    m, _ = _save(tmp_path, "sig", keras.Model(inp, out), keras.losses.BinaryCrossentropy(from_logits=True))
    found = [f for f in _static(m) if f.code in CHECK_CODES]
    assert [f.code for f in found] == ["from-logits-mismatch"] and "sigmoid" in found[0].message
    out = L.Softmax(name="sm")(L.Dense(3, name="d2")(inp))
    m, _ = _save(tmp_path, "sm", keras.Model(inp, out),
                 keras.losses.SparseCategoricalCrossentropy(from_logits=True), y=np.arange(40) % 3)
    assert [f.code for f in _static(m) if f.code in CHECK_CODES] == ["from-logits-mismatch"]
    m, _ = _save(tmp_path, "lin", _dense((3,)), keras.losses.CategoricalCrossentropy(from_logits=True),
                 y=np.eye(3, dtype="float32")[np.arange(40) % 3])
    assert not [f for f in _static(m) if f.code in CHECK_CODES]


def test_linear_output_into_probability_crossentropy(tmp_path):
    x = np.random.default_rng(2).normal(0, 3, size=(48, 4)).astype("float32")
    y = (x[:, :1] > 0).astype("float32")
    m, dpath = _save(tmp_path, "unbounded", _dense((1,)), "binary_crossentropy", x=x, y=y)
    res = run_cli("compare", m, dpath, "--format", "json")
    assert res.code == 1, res.stderr
    assert _codes(res) == {"from-logits-mismatch"}
    f = next(f for f in res.json["findings"] if f["code"] == "from-logits-mismatch")
    assert "outside [0, 1]" in f["message"] and f["magnitude"] > 0


# -- batch-size dependence -----------------------------------------------------------------------------------
def test_sparse_sum_reduction_depends_on_batch_size(tmp_path):
    import keras

    y = (np.arange(40) % 3).astype("int64")
    m, dpath = _save(tmp_path, "scce_sum", _dense((3,), "softmax"),
                     keras.losses.SparseCategoricalCrossentropy(reduction="sum"), y=y)
    res = run_cli("compare", m, dpath, "--format", "json", "--batch-size", "10")
    assert res.code == 0, res.stderr
    assert _codes(res) == {"batch-size-dependence"}
    f = next(f for f in res.json["findings"] if f["code"] == "batch-size-dependence")
    assert f["magnitude"] == pytest.approx(0.5, rel=1e-4)  # batches of 5 instead of 10: half the sums
    assert "at batch 10" in f["message"] and "at batch 5" in f["message"]


# -- non-finite -------------------------------------------------------------------------------------------------
def test_inf_in_a_target_array(tmp_path):
    import keras

    L = keras.layers
    inp = keras.Input((3,), name="x")
    a, b = L.Dense(1, name="a")(inp), L.Dense(2, name="b")(inp)
    model = keras.Model(inp, [a, b])
    model.compile("sgd", {"a": "mse", "b": "mae"})
    rng = np.random.default_rng(3)
    x = rng.normal(size=(30, 3)).astype("float32")
    ya, yb = rng.normal(size=(30, 1)).astype("float32"), rng.normal(size=(30, 2)).astype("float32")
    yb[12, 1] = np.inf
    model.save(tmp_path / "m.keras")
    np.savez(tmp_path / "d.npz", x=x, y_a=ya, y_b=yb)
    res = run_cli("compare", tmp_path / "m.keras", tmp_path / "d.npz", "--format", "json")
    assert res.code == 1, res.stderr
    assert _codes(res) == {"non-finite"}
    f = res.json["findings"][[g["code"] for g in res.json["findings"]].index("non-finite")]
    assert f["subject"] == "y_b" and "sample 12" in f["message"] and "Inf" in f["message"]


def test_nan_made_by_a_layer_and_by_the_loss(losses):
    import keras

    d, path, mod = losses
    L = keras.layers
    x = np.random.default_rng(4).normal(size=(20, 2)).astype("float32")
    x[:, 0] = np.abs(x[:, 0]) + 0.1
    x[7, 1] = -1.0
    x[:7, 1] = np.abs(x[:7, 1]) + 0.1
    inp = keras.Input((2,), name="x")
    out = L.Dense(1, name="after", kernel_initializer="ones")(mod.LogLayer(name="log_layer")(inp))
    m, dpath = _save(d, "nan_layer", keras.Model(inp, out), "mse", x=x, y=np.zeros((20, 1), "float32"))
    res = run_cli("compare", m, dpath, "--custom-objects", path, "--format", "json")
    assert res.code == 1, res.stderr
    assert _codes(res) == {"non-finite"}
    f = next(f for f in res.json["findings"] if f["code"] == "non-finite")
    assert f["subject"] == "log_layer" and "sample 7" in f["message"]

    x = np.abs(x) + 0.1
    inp = keras.Input((2,), name="x")
    out = L.Dense(1, name="lin", kernel_initializer="ones", bias_initializer="zeros")(inp)
    x[5] = -x[5]
    m, dpath = _save(d, "nan_loss", keras.Model(inp, out), mod.log_of_pred, x=x, y=np.zeros((20, 1), "float32"))
    res = run_cli("compare", m, dpath, "--custom-objects", path, "--format", "json")
    assert res.code == 1, res.stderr
    assert _codes(res) == {"non-finite"}
    f = next(f for f in res.json["findings"] if f["code"] == "non-finite")
    assert "loss of output" in f["message"] and "sample 5" in f["message"]


# -- label smoothing -----------------------------------------------------------------------------------------
def test_binary_label_smoothing_floor(tmp_path):
    import keras

    ls = 0.2
    m, _ = _save(tmp_path, "bce_ls", _dense((2,), "sigmoid"), keras.losses.BinaryCrossentropy(label_smoothing=ls))
    found = [f for f in _static(m) if f.code in CHECK_CODES]
    assert [f.code for f in found] == ["label-smoothing"]
    y = np.array([[0.0, 1.0], [1.0, 0.0]], "float32")
    best = y * (1 - ls) + 0.5 * ls
    keras_floor = float(keras.losses.BinaryCrossentropy(label_smoothing=ls)(y, best))
    assert found[0].magnitude == pytest.approx(keras_floor, rel=1e-5)


def test_softmax_in_a_custom_layer_is_found_from_the_outputs(losses):
    import keras

    d, path, mod = losses
    L = keras.layers
    inp = keras.Input((4,), name="x")
    out = mod.Normalize(name="probs")(L.Dense(3, name="d")(inp))
    y = np.eye(3, dtype="float32")[np.arange(40) % 3]
    m, dpath = _save(d, "custom_sm", keras.Model(inp, out), keras.losses.CategoricalCrossentropy(from_logits=True), y=y)
    assert not [f for f in _static(m, path) if f.code in CHECK_CODES]  # the graph cannot tell
    res = run_cli("compare", m, dpath, "--custom-objects", path, "--format", "json")
    assert res.code == 1, res.stderr
    assert _codes(res) == {"from-logits-mismatch"}
    f = next(f for f in res.json["findings"] if f["code"] == "from-logits-mismatch")
    assert "each row sums to 1" in f["message"]


def test_channels_first_convolution_via_inspect(tmp_path):
    import keras

    L = keras.layers
    inp = keras.Input((2, 16, 16), name="x")
    out = L.Conv2D(7, 3, padding="same", data_format="channels_first", name="fcn")(inp)
    model = keras.Model(inp, out)
    model.compile("sgd", "mse")
    model.save(tmp_path / "nchw.keras")
    res = run_cli("inspect", tmp_path / "nchw.keras", "--format", "markdown")
    assert res.code == 0, res.stderr
    assert "channels-first-axis" in res.stdout and "data_format='channels_first'" in res.stdout
    assert "**Loss configuration**" in res.stdout and "(batch, 7, 16, 16)" in res.stdout


def test_loss_that_needs_the_real_targets_is_probed_on_the_data(losses):
    d, path, mod = losses
    y = (np.arange(40) % 3).reshape(40, 1).astype("float32")  # integer labels: not the output's shape
    m, dpath = _save(d, "sparse_scalar", _dense((3,), "softmax"), mod.mean_sparse_ce, y=y)
    assert not [f for f in _static(m, path) if f.code in CHECK_CODES]  # synthetic targets do not fit it
    res = run_cli("compare", m, dpath, "--custom-objects", path, "--format", "json")
    assert res.code == 1, res.stderr
    assert _codes(res) == {"loss-rank"}
    f = next(f for f in res.json["findings"] if f["code"] == "loss-rank")
    assert "returns a scalar" in f["message"] and "averages over the batch" in f["message"]
