"""Training that turns non-finite (--fit-epochs): the first non-finite step located and taken apart, on
models built to diverge at each part of a step, checked against Keras's own fit of the same file."""

from __future__ import annotations

import math

import numpy as np
import pytest
from conftest import first_nonfinite_layer, fit_until, run_cli, tape_step

pytestmark = pytest.mark.keras

BATCH = 16


def _keras_first_nonfinite(path, x, y, epochs):
    """(epoch, step) counted from 1 of the first batch after which Keras's own fit (a fresh load, seed 0,
    no shuffle) has a non-finite logged loss or non-finite weights."""
    import keras

    model = keras.saving.load_model(path, safe_mode=False)
    found = []

    class Watch(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.epoch = epoch

        def on_train_batch_end(self, batch, logs=None):
            weights_ok = all(np.all(np.isfinite(np.asarray(v))) for v in self.model.trainable_variables)
            if not found and (not math.isfinite(float(logs["loss"])) or not weights_ok):
                found.append((self.epoch + 1, batch + 1))
                self.model.stop_training = True

    keras.utils.set_random_seed(0)
    model.fit(x, y, batch_size=BATCH, epochs=epochs, shuffle=False, verbose=0, callbacks=[Watch()])
    return found[0] if found else None


def _keras_take_apart(path, x, y, epoch, step, custom):
    """What a GradientTape shows of step `step` of epoch `epoch` (from 1) at the weights Keras's own fit
    (a fresh load, no shuffle) leaves just before it: (the first layer, in call order, whose training-mode
    output is non-finite; the first variable whose gradient is non-finite, else the first whose value
    after the optimizer's update is). The models here are plain chains of layers."""
    import keras
    import tensorflow as tf

    objects = {custom.__name__: custom} if custom else None
    model = fit_until(keras.saving.load_model(path, custom_objects=objects, safe_mode=False), x, y, BATCH,
                      epoch - 1, step - 1)
    xb = tf.constant(x[(step - 1) * BATCH:step * BATCH])
    yb = tf.constant(y[(step - 1) * BATCH:step * BATCH])
    layer = first_nonfinite_layer(model, xb)  # before tape_step, which may update the weights
    _, bad_grad, bad_update = tape_step(model, xb, yb)
    return layer, bad_grad or bad_update


def _dense(keras, activation=None, dtype=None, hidden=True):
    inputs = keras.Input((4,), name="x")
    h = keras.layers.Dense(8, activation="relu", name="hidden", dtype=dtype)(inputs) if hidden else inputs
    return keras.Model(inputs, keras.layers.Dense(1, activation=activation, name="out", dtype=dtype,
                                                  kernel_initializer="zeros" if not hidden else "glorot_uniform")(h))


LOSS_FILE = """import keras
from keras import ops


@keras.saving.register_keras_serializable(package="lc_tests")
def {name}(y_true, y_pred):
    return {body}
"""


def _custom_loss(tmp_path, name, body):
    """A custom loss written to tmp_path/losses.py (passed with --custom-objects) and imported here."""
    import importlib.util

    (tmp_path / "losses.py").write_text(LOSS_FILE.format(name=name, body=body))
    spec = importlib.util.spec_from_file_location(f"lc_{name}", tmp_path / "losses.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return getattr(module, name)


def _case(tmp_path, name):
    import keras

    rng = np.random.default_rng(3)
    x = rng.normal(size=(64, 4)).astype("float32")
    y = x.sum(axis=1, keepdims=True).astype("float32")
    custom = None
    if name == "input":
        x[37, 2] = np.nan
        model = _dense(keras)
        model.compile(keras.optimizers.Adam(0.01), "mse")
    elif name == "forward":
        model = _dense(keras, dtype="float16")
        model.compile("sgd", "mse")
        x = x * 3e4
    elif name == "loss":
        custom = _custom_loss(tmp_path, "neg_log", "-ops.log(y_pred) * y_true")
        model = _dense(keras, activation="relu")
        model.compile("adam", custom)
        y = np.abs(y)
    elif name == "gradient":
        custom = _custom_loss(tmp_path, "sqrt_error", "ops.sqrt(ops.abs(y_true - y_pred))")
        model = _dense(keras, hidden=False)
        model.compile("sgd", custom)
        y = np.zeros_like(y)
    elif name == "update":
        model = _dense(keras)
        model.compile(keras.optimizers.SGD(1e37), "mse")
        y = y * 1e3  # gradients of about 1e4: one step of the learning rate overflows float32
    model.save(tmp_path / "model.keras")
    np.savez(tmp_path / "data.npz", x=x, y=y)
    extra = ["--custom-objects", str(tmp_path / "losses.py")] if custom else []
    return tmp_path / "model.keras", tmp_path / "data.npz", x, y, extra, custom


@pytest.mark.parametrize("where, layer, variable", [("input", None, None), ("forward", "hidden", None),
                                                    ("loss", None, None), ("gradient", None, "out/kernel"),
                                                    ("update", None, "hidden/kernel")])
def test_the_first_nonfinite_step_is_located(tmp_path, where, layer, variable):
    model, data, x, y, extra, custom = _case(tmp_path, where)
    result = run_cli("compare", model, data, "--batch-size", str(BATCH), "--fit-epochs", "3", "--format", "json",
                     *extra)
    assert result.code == 1, result.stderr
    doc = result.json
    t = doc["training_nonfinite"]
    epoch, step = _keras_first_nonfinite(model, x, y, 3)
    assert (t["epoch"], t["step"]) == (epoch, step)
    assert t["samples"] == [(step - 1) * BATCH, min(step * BATCH, len(x)) - 1]
    assert t["where"] == where
    if where in ("forward", "gradient", "update"):
        tape_layer, tape_variable = _keras_take_apart(model, x, y, epoch, step, custom)
        if where == "forward":
            assert t["layer"] == tape_layer == layer
        else:
            assert tape_layer is None and t["variable"] == tape_variable == variable
    found = [f for f in doc["findings"] if f["code"] == "nonfinite-in-training"]
    assert len(found) == 1 and f"epoch {epoch}, step {step}" in found[0]["message"]
    assert "evaluate" in doc["figures"]  # the rest of the report stands
