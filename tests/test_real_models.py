"""Architectures of real examples (keras-io VAE, image classification with augmentation, mixed-precision
classifier, transfer-learning fine-tuning, tf.keras 2.x conv nets), tiny and built in tmp_path: every
training-mode cause is named with Keras's own numbers, measured by toggling the layers in Keras itself
in the same test."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import rel, run_cli

pytestmark = pytest.mark.keras

B = 32


def _compare(model: Path, data: Path, *extra) -> dict:
    res = run_cli("compare", model, data, "--format", "json", *extra)
    assert res.code in (0, 1), res.stderr
    out = res.json
    out["_code"] = res.code
    return out


def _figs(out: dict) -> dict[str, float]:
    return {k: v["value"] for k, v in out["figures"].items()}


def _by_code(out: dict, code: str) -> list[dict]:
    return [f for f in out["findings"] if f["code"] == code]


def _epoch_mean(values: list[tuple[int, float]]) -> float:
    return sum(n * v for n, v in values) / sum(n for n, _ in values)


def _keras_loss(model, x, y, forward, sw=None) -> float:
    """Keras's own loss (compute_loss on `forward(x_batch)`), batch-size-weighted over the batches."""
    out = []
    for s in range(0, len(x), B):
        xb, yb = x[s:s + B], y[s:s + B]
        pred = forward(xb)
        w = None if sw is None else sw[s:s + B]
        out.append((len(xb), float(model.compute_loss(x=xb, y=yb, y_pred=pred, sample_weight=w))))
    return _epoch_mean(out)


def _import(path: Path):
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# ----------------------------------------------------------------------------------------------
# A custom layer with a training branch: the keras-io VAE's Sampling layer
# ----------------------------------------------------------------------------------------------
SAMPLING = '''
import keras
from keras import ops


class Sampling(keras.layers.Layer):
    """keras-io VAE: z = z_mean + exp(z_log_var / 2) * eps in training, z_mean otherwise."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.seed_generator = keras.random.SeedGenerator(1337)

    def call(self, inputs, training=None):
        z_mean, z_log_var = inputs
        if not training:
            return z_mean
        eps = keras.random.normal(ops.shape(z_mean), seed=self.seed_generator)
        return z_mean + ops.exp(0.5 * z_log_var) * eps
'''


def _vae(tmp_path: Path):
    import keras

    (tmp_path / "sampling.py").write_text(SAMPLING)
    Sampling = _import(tmp_path / "sampling.py").Sampling
    keras.utils.set_random_seed(11)
    rng = np.random.default_rng(11)
    L = keras.layers
    inp = keras.Input((8, 8, 1))
    h = L.Conv2D(4, 3, strides=2, padding="same", activation="relu")(inp)
    h = L.Dense(8, activation="relu")(L.Flatten()(h))
    z_mean, z_log_var = L.Dense(2, name="z_mean")(h), L.Dense(2, name="z_log_var")(h)
    z = Sampling(name="sampling")([z_mean, z_log_var])
    h = L.Reshape((4, 4, 4))(L.Dense(64, activation="relu")(z))
    h = L.Conv2DTranspose(4, 3, strides=2, padding="same", activation="relu")(h)
    out = L.Conv2DTranspose(1, 3, padding="same", activation="sigmoid")(h)
    model = keras.Model(inp, out)
    model.compile("adam", loss="binary_crossentropy")
    x = (rng.random((80, 8, 8, 1)) > 0.5).astype("float32")
    model.fit(x, x, batch_size=B, epochs=2, verbose=0)
    kernel, _ = model.get_layer("z_log_var").get_weights()
    model.get_layer("z_log_var").set_weights([kernel, np.full(2, 3.0, "float32")])  # a wide posterior
    model.save(tmp_path / "vae.keras")
    np.savez(tmp_path / "vae.npz", x=x, y=x)
    return tmp_path / "vae.keras", tmp_path / "vae.npz", x


def test_custom_training_layer_is_named_with_keras_toggle(tmp_path):
    import keras

    model_path, data_path, x = _vae(tmp_path)
    out = _compare(model_path, data_path, "--custom-objects", tmp_path / "sampling.py")
    fig = _figs(out)
    assert not _by_code(out, "unexplained"), out["findings"]
    model = keras.saving.load_model(model_path, custom_objects={"Sampling": _import(tmp_path / "sampling.py").Sampling})
    # Keras's own toggle: the sampling layer (the only training-dependent layer) in training mode
    ev = model.evaluate(x, x, batch_size=B, verbose=0)
    sampled = _keras_loss(model, x, x, lambda xb: model(xb, training=True))
    assert rel(fig["evaluate"], ev) < 1e-4
    assert rel(fig["train_mode_custom_only"], sampled) < 1e-4
    assert rel(fig["train_mode"], sampled) < 1e-4
    [f] = _by_code(out, "noise-layer")
    assert f["subject"] == "sampling" and "sampling" in f["message"] and "`training`" in f["message"]
    assert f["magnitude"] == pytest.approx(sampled - ev, rel=1e-3)
    assert f["between"] == ["train_mode_custom_only", "evaluate"]
    assert out["_code"] == 0


# ----------------------------------------------------------------------------------------------
# Augmentation + BatchNormalization + Dropout (keras-io image classification from scratch)
# ----------------------------------------------------------------------------------------------
def _augmented_cnn(tmp_path: Path):
    import keras

    keras.utils.set_random_seed(21)
    rng = np.random.default_rng(21)
    L = keras.layers
    model = keras.Sequential([
        keras.Input((12, 12, 3)),
        L.RandomFlip("horizontal", name="flip"),
        L.RandomRotation(0.1, name="rotate"),
        L.Conv2D(8, 3, padding="same", name="conv"),
        L.Dropout(0.3, name="drop"),
        L.BatchNormalization(name="bn"),
        L.Activation("relu"),
        L.GlobalAveragePooling2D(),
        L.Dense(3, activation="softmax", name="head"),
    ])
    model.compile("adam", loss="sparse_categorical_crossentropy")
    x = rng.normal(1.0, 2.0, size=(96, 12, 12, 3)).astype("float32")
    y = rng.integers(0, 3, size=(96,)).astype("int32")
    model.save(tmp_path / "cnn.keras")
    np.savez(tmp_path / "cnn.npz", x=x, y=y)
    return tmp_path / "cnn.keras", tmp_path / "cnn.npz", x, y


def _forced(model, on: set[str]):
    """Keras's own forward pass of a Sequential model with `training=True` exactly for the named layers."""

    def forward(xb):
        h = xb
        for layer in model.layers:
            h = layer(h, training=layer.name in on) if layer.name in on or _takes_training(layer) else layer(h)
        return h

    return forward


def _takes_training(layer) -> bool:
    import inspect

    return "training" in inspect.signature(layer.call).parameters


def test_interaction_is_a_finding_and_findings_add_up(tmp_path):
    """BatchNorm on batch statistics with augmentation and Dropout before it: the joint effect is a
    finding of its own, the findings add up to the training-mode gap, and the random sizes (near the
    threshold at --rtol 0.01) carry their spread over random draws. Keras's own ablation: each family
    alone in training mode (deterministic BN exactly; random layers draw differently in eager Keras,
    so those agree within the measured spread)."""
    import keras

    model_path, data_path, x, y = _augmented_cnn(tmp_path)
    rtol = 0.01
    out = _compare(model_path, data_path, "--rtol", str(rtol))
    fig = _figs(out)
    ev = fig["evaluate"]
    model = keras.saving.load_model(model_path)
    assert rel(ev, model.evaluate(x, y, batch_size=B, verbose=0)) < 1e-4
    keras_fig = {}
    for key, on in (("train_mode_noise_only", {"flip", "rotate"}), ("train_mode_dropout_only", {"drop"}),
                    ("train_mode_batchnorm_only", {"bn"}), ("train_mode", {"flip", "rotate", "drop", "bn"})):
        keras_fig[key] = _keras_loss(model, x, y, _forced(model, on))
    assert rel(fig["train_mode_batchnorm_only"], keras_fig["train_mode_batchnorm_only"]) < 1e-4
    [noise] = _by_code(out, "noise-layer")
    [inter] = _by_code(out, "interaction")
    [bn] = _by_code(out, "batchnorm-batch-stats")
    assert noise["uncertainty"] > 0 and inter["uncertainty"] > 0 and "uncertainty" not in bn
    assert "±" in inter["message"] and "BatchNormalization" in inter["message"]
    assert abs(fig["train_mode_noise_only"] - keras_fig["train_mode_noise_only"]) < 4 * noise["uncertainty"]
    keras_inter = (keras_fig["train_mode"] - ev) - sum(keras_fig[k] - ev for k in (
        "train_mode_noise_only", "train_mode_dropout_only", "train_mode_batchnorm_only"))
    assert abs(keras_inter) > rtol * abs(ev)  # Keras itself shows the joint effect
    assert abs(inter["magnitude"] - keras_inter) < 4 * (inter["uncertainty"] + noise["uncertainty"])
    [row] = [r for r in out["decomposition"] if r["name"] == "interaction"]
    assert row["value"] == pytest.approx(inter["magnitude"]) and inter["between"] is None
    # the findings add up to the training-mode gap (up to families below the threshold)
    parts = {g["code"]: g["magnitude"] for g in out["findings"]
             if g["code"] in ("noise-layer", "dropout", "batchnorm-batch-stats", "interaction")}
    missing = 4 - len(parts)
    assert abs(sum(parts.values()) - (fig["train_mode"] - ev)) <= missing * rtol * abs(ev) + 1e-9


def test_no_random_family_no_extra_draws(tmp_path):
    """Without Dropout/noise/custom layers the sizes carry no uncertainty: no extra pass ran."""
    import keras

    keras.utils.set_random_seed(3)
    rng = np.random.default_rng(3)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(6), keras.layers.BatchNormalization(),
                              keras.layers.Dense(1)])
    model.compile("sgd", loss="mse")
    x = rng.normal(2.0, 3.0, size=(64, 4)).astype("float32")
    model.save(tmp_path / "m.keras")
    np.savez(tmp_path / "d.npz", x=x, y=x[:, :1])
    out = _compare(tmp_path / "m.keras", tmp_path / "d.npz", "--rtol", "0.3")
    assert all("uncertainty" not in f for f in out["findings"])


# ----------------------------------------------------------------------------------------------
# Fine-tuning a nested base called with training=False (keras-io transfer learning)
# ----------------------------------------------------------------------------------------------
def test_nested_training_false_overridden_is_said(tmp_path):
    import keras

    keras.utils.set_random_seed(31)
    rng = np.random.default_rng(31)
    L = keras.layers
    b_in = keras.Input((6,))
    base = keras.Model(b_in, L.Activation("relu")(L.BatchNormalization(name="base_bn")(L.Dense(8)(b_in))),
                       name="base")
    inp = keras.Input((6,))
    model = keras.Model(inp, L.Dense(1, name="head")(base(inp, training=False)))
    base.trainable = True  # the fine-tuning phase: the base unfrozen, still called with training=False
    model.compile("adam", loss="mse")
    x = rng.normal(3.0, 2.0, size=(64, 6)).astype("float32")
    y = x[:, :1] - x[:, 1:2]
    model.save(tmp_path / "ft.keras")
    np.savez(tmp_path / "ft.npz", x=x, y=y)
    out = _compare(tmp_path / "ft.keras", tmp_path / "ft.npz")
    fig = _figs(out)
    loaded = keras.saving.load_model(tmp_path / "ft.keras")
    # Keras itself: model(x, training=True) runs the base's BN on batch statistics despite training=False
    keras_train = _keras_loss(loaded, x, y, lambda xb: loaded(xb, training=True))
    ev = loaded.evaluate(x, y, batch_size=B, verbose=0)
    assert rel(keras_train, ev) > 1e-3
    assert rel(fig["train_mode_batchnorm_only"], keras_train) < 1e-4
    [f] = _by_code(out, "batchnorm-batch-stats")
    assert "'base'" in f["message"] and "training=False" in f["message"] and "ignores" in f["message"]
    assert "trainable=False" in f["advice"]


# ----------------------------------------------------------------------------------------------
# Mixed precision: a bfloat16 softmax output
# ----------------------------------------------------------------------------------------------
def test_mixed_precision_sized_against_float32_copy(tmp_path):
    import keras

    keras.utils.set_random_seed(41)
    rng = np.random.default_rng(41)
    L = keras.layers

    def build(policy):
        return keras.Sequential([keras.Input((10,)), L.Dense(32, activation="relu", dtype=policy, name="d1"),
                                 L.Dense(5, dtype=policy, name="logits"),
                                 L.Activation("softmax", dtype=policy, name="probs")])

    model = build("mixed_bfloat16")
    model.compile("adam", loss="sparse_categorical_crossentropy")
    x = rng.normal(size=(96, 10)).astype("float32") * 3
    y = rng.integers(0, 5, size=(96,)).astype("int32")
    model.fit(x, y, batch_size=B, epochs=3, verbose=0)
    model.save(tmp_path / "mp.keras")
    np.savez(tmp_path / "mp.npz", x=x, y=y)
    out = _compare(tmp_path / "mp.keras", tmp_path / "mp.npz")
    fig = _figs(out)
    loaded = keras.saving.load_model(tmp_path / "mp.keras")
    # Keras's own float32 model with the same weights
    f32 = build("float32")
    f32.set_weights(loaded.get_weights())
    f32.compile(loss="sparse_categorical_crossentropy")
    keras_f32 = f32.evaluate(x, y, batch_size=B, verbose=0)
    keras_mixed = loaded.evaluate(x, y, batch_size=B, verbose=0)
    assert rel(fig["evaluate"], keras_mixed) < 1e-4
    assert rel(fig["evaluate_float32"], keras_f32) < 1e-4
    assert rel(keras_mixed, keras_f32) > 1e-4
    [f] = [g for g in _by_code(out, "mixed-precision") if g["between"] == ["evaluate", "evaluate_float32"]]
    assert f["magnitude"] == pytest.approx(keras_mixed - keras_f32, rel=1e-3)
    assert "mixed_bfloat16" in f["message"] and f["subject"] == "probs"
    assert loaded.layers[0].dtype_policy.name == "mixed_bfloat16"  # the user's model is untouched


# ----------------------------------------------------------------------------------------------
# A loss that sums over the batch: loss-rank and batch-size-dependence
# ----------------------------------------------------------------------------------------------
BATCH_SUM = '''
from keras import ops


def batch_sum_mse(y_true, y_pred):
    return ops.sum(ops.square(y_true - y_pred))
'''


def test_batch_sum_loss_gets_rank_and_batch_size_findings(tmp_path):
    import keras

    (tmp_path / "losses.py").write_text(BATCH_SUM)
    fn = _import(tmp_path / "losses.py").batch_sum_mse
    keras.utils.set_random_seed(51)
    rng = np.random.default_rng(51)
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    model.compile("sgd", loss=fn)
    x = rng.normal(size=(64, 3)).astype("float32")
    y = rng.normal(size=(64, 2)).astype("float32")
    model.save(tmp_path / "bs.keras")
    np.savez(tmp_path / "bs.npz", x=x, y=y)
    out = _compare(tmp_path / "bs.keras", tmp_path / "bs.npz", "--custom-objects", tmp_path / "losses.py")
    assert _by_code(out, "loss-rank") and _by_code(out, "batch-size-dependence")
    loaded = keras.saving.load_model(tmp_path / "bs.keras", custom_objects={"batch_sum_mse": fn})
    at_b = loaded.evaluate(x, y, batch_size=B, verbose=0)
    at_half = loaded.evaluate(x, y, batch_size=B // 2, verbose=0)
    [f] = _by_code(out, "batch-size-dependence")
    assert f["magnitude"] == pytest.approx(at_half / at_b, rel=1e-4)
    assert "loss-rank" in f["message"]
    only = _compare(tmp_path / "bs.keras", tmp_path / "bs.npz", "--custom-objects", tmp_path / "losses.py",
                    "--select", "batch-size-dependence")
    assert [g["code"] for g in only["findings"]] == ["batch-size-dependence"]


# ----------------------------------------------------------------------------------------------
# Sample weights under a mask, per sample and per position
# ----------------------------------------------------------------------------------------------
def _masked_seq(tmp_path: Path, per_position: bool):
    import keras

    keras.utils.set_random_seed(61)
    rng = np.random.default_rng(61)
    L = keras.layers
    model = keras.Sequential([keras.Input((7,), dtype="int32"), L.Embedding(9, 4, mask_zero=True),
                              L.Dense(2)])
    model.compile("sgd", loss="mse")
    x = rng.integers(0, 9, size=(48, 7)).astype("int32")
    x[:, 5:] = 0  # padding
    y = rng.normal(size=(48, 7, 2)).astype("float32")
    sw = rng.uniform(0.2, 3.0, size=(48, 7) if per_position else (48, 1)).astype("float32")
    model.save(tmp_path / "seq.keras")
    np.savez(tmp_path / "seq.npz", x=x, y=y, sample_weight=sw)
    return model, x, y, sw


@pytest.mark.parametrize("per_position", [False, True])
def test_sample_weight_normalized_under_mask(tmp_path, per_position):
    import keras

    model, x, y, sw = _masked_seq(tmp_path, per_position)
    out = _compare(tmp_path / "seq.keras", tmp_path / "seq.npz")
    # numpy from Keras's own per-element losses and mask: sum(w*l*m)/sum(w*m) per batch
    per_element = keras.losses.MeanSquaredError(reduction=None)
    batches = []
    for s in range(0, len(x), B):
        pred = model(x[s:s + B], training=False)
        m = np.asarray(pred._keras_mask, np.float64)
        lv = np.asarray(per_element(y[s:s + B], np.asarray(pred)), np.float64)
        w = np.broadcast_to(sw[s:s + B], lv.shape) * m
        batches.append((len(lv), float(np.sum(lv * w) / np.sum(w))))
    expected = _epoch_mean(batches)
    [f] = _by_code(out, "sample-weight")
    got = float(re.search(r"normalized by the weights .*?, per batch\) ([-0-9.e+]+[0-9])", f["message"]).group(1))
    assert got == pytest.approx(expected, rel=1e-5)
    assert "unmasked" in f["message"]
    ev = model.evaluate(x, y, sample_weight=sw, batch_size=B, verbose=0)
    assert rel(_figs(out)["evaluate"], ev) < 1e-4
    if per_position:
        assert "per pixel" in f["message"] and "not samples" in f["message"]
    else:
        assert "per pixel" not in f["message"]


# ----------------------------------------------------------------------------------------------
# tf.keras 2.x files with options Keras 3 rejects at their default values
# ----------------------------------------------------------------------------------------------
TFKERAS_CONV = r'''
import json, os, sys
os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
import numpy as np
import tf_keras as keras
out = sys.argv[1]
keras.utils.set_random_seed(71)
rng = np.random.default_rng(71)
L = keras.layers
x = rng.normal(size=(40, 8, 8, 2)).astype("float32")
y = rng.normal(size=(40, 8, 8, 1)).astype("float32")
inp = keras.Input((8, 8, 2))
h = L.SeparableConv2D(4, 3, padding="same", activation="relu")(inp)
h = L.Conv2D(4, 3, strides=2, padding="same", activation="relu")(h)
h = L.Conv2DTranspose(4, 3, strides=2, padding="same", activation="relu")(h)
m = keras.Model(inp, L.Conv2D(1, 1)(h))
m.compile(keras.optimizers.Adam(0.01), loss="mse")
m.fit(x, y, batch_size=16, epochs=1, verbose=0)
m.save(os.path.join(out, "conv.h5"))
np.savez(os.path.join(out, "conv.npz"), x=x, y=y)
json.dump({"evaluate": float(m.evaluate(x, y, batch_size=32, verbose=0))}, open(os.path.join(out, "conv.json"), "w"))
'''


def test_tfkeras_conv_transpose_and_separable_load(tmp_path):
    import h5py
    import keras

    env = dict(os.environ, TF_USE_LEGACY_KERAS="1")
    subprocess.run([sys.executable, "-c", textwrap.dedent(TFKERAS_CONV), str(tmp_path)], check=True, env=env,
                   capture_output=True)
    with pytest.raises((ValueError, TypeError)):
        keras.saving.load_model(tmp_path / "conv.h5", compile=False)
    out = _compare(tmp_path / "conv.h5", tmp_path / "conv.npz")
    expected = json.loads((tmp_path / "conv.json").read_text())["evaluate"]
    assert rel(_figs(out)["evaluate"], expected) < 1e-4
    notes = " ".join(out.get("notes") or [])
    assert "Conv2DTranspose.groups" in notes and "SeparableConv2D.kernel_regularizer" in notes

    # an option that matters is refused by name, without blaming how the file was saved
    bad = tmp_path / "grouped.h5"
    bad.write_bytes((tmp_path / "conv.h5").read_bytes())
    with h5py.File(bad, "r+") as f:
        config = f.attrs["model_config"]
        config = config.decode() if isinstance(config, bytes) else config
        cfg = json.loads(config)
        layer = next(lyr for lyr in cfg["config"]["layers"] if lyr["class_name"] == "Conv2DTranspose")
        layer["config"]["groups"] = 2
        f.attrs["model_config"] = json.dumps(cfg)
    res = run_cli("inspect", bad)
    assert res.code == 2
    line = res.stderr.strip()
    assert len(line.splitlines()) == 1 and "groups=2" in line and "tf.keras" in line
    assert "saved with model.save()" not in line


BLOCK = '''
import keras


class TransformerishBlock(keras.layers.Layer):
    """keras-io style block: Dense + residual, with a Dropout it calls with the block's own `training`."""

    def __init__(self, units=6, rate=0.4, **kwargs):
        super().__init__(**kwargs)
        self.units, self.rate = units, rate
        self.dense = keras.layers.Dense(units, activation="relu")
        self.drop = keras.layers.Dropout(rate)

    def call(self, inputs, training=None):
        return inputs + self.drop(self.dense(inputs), training=training)

    def get_config(self):
        return {**super().get_config(), "units": self.units, "rate": self.rate}
'''


def test_custom_block_passing_training_to_its_dropout_is_not_counted_twice(tmp_path):
    """A custom layer whose only training behaviour is a Dropout inside it: the Dropout is the cause
    (its own family), the custom-layer figure holds it off and equals evaluate, nothing unexplained."""
    import keras

    (tmp_path / "block.py").write_text(BLOCK)
    Block = _import(tmp_path / "block.py").TransformerishBlock
    keras.utils.set_random_seed(81)
    rng = np.random.default_rng(81)
    model = keras.Sequential([keras.Input((6,)), Block(name="block"), keras.layers.Dense(1)])
    model.compile("sgd", loss="mse")
    x = rng.normal(size=(64, 6)).astype("float32")
    y = x[:, :1] * 2
    model.save(tmp_path / "blk.keras")
    np.savez(tmp_path / "blk.npz", x=x, y=y)
    out = _compare(tmp_path / "blk.keras", tmp_path / "blk.npz", "--custom-objects", tmp_path / "block.py")
    fig = _figs(out)
    loaded = keras.saving.load_model(tmp_path / "blk.keras", custom_objects={"TransformerishBlock": Block})
    assert rel(fig["evaluate"], loaded.evaluate(x, y, batch_size=B, verbose=0)) < 1e-4
    assert fig["train_mode_custom_only"] == pytest.approx(fig["evaluate"], rel=1e-6)
    assert fig["train_mode"] == pytest.approx(fig["train_mode_dropout_only"], rel=1e-6)
    assert rel(fig["train_mode"], fig["evaluate"]) > 1e-3
    assert _by_code(out, "dropout") and not _by_code(out, "noise-layer") and not _by_code(out, "unexplained")
    assert not _by_code(out, "interaction")
