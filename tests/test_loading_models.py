"""Issue 6: model files users really have (tf.keras 2.x .h5, Keras 3 .h5/.keras, custom objects,
Lambda, uncompiled, misnamed), each checked against the evaluate value Keras computed at save time,
and every broken model file refused with one precise line (exit 2, no traceback)."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import FIXTURES, rel, run_cli

pytestmark = pytest.mark.keras

TFK = FIXTURES / "inputs_tfkeras"
K3 = FIXTURES / "inputs_keras3"
TFK_EXPECTED = json.loads((TFK / "expected.json").read_text())
K3_EXPECTED = json.loads((K3 / "expected.json").read_text())
EXTRA = {
    "custom_fn": ["--custom-objects", TFK / "custom_fns.py"],
    "custom_layer": ["--custom-objects", TFK / "custom_classes.py"],
    "custom_loss_class": ["--custom-objects", TFK / "custom_classes.py"],
    "registered": ["--custom-objects", TFK / "custom_classes.py"],
    "lambda_layer": ["--unsafe"],
    "custom_fn.keras": ["--custom-objects", K3 / "custom_fns.py"],
    "registered.keras": ["--custom-objects", K3 / "custom_classes.py"],
    "lambda.keras": ["--unsafe"],
}
_cache: dict[tuple, object] = {}
WHY = {"bce_unbounded": "binary crossentropy", "frozen_reg": "frozen layer(s) frozen",
       "mse_none": 'reduction="none"'}


def compare(model: Path, data: Path, *extra) -> object:
    key = (str(model), str(data), *map(str, extra))
    if key not in _cache:
        _cache[key] = run_cli("compare", model, data, "--format", "json", *extra)
    return _cache[key]


def assert_refused(res, *phrases: str) -> str:
    """Exit 2, exactly one line on stderr, no traceback, and the phrases in it."""
    assert res.code == 2, (res.code, res.stdout[:500], res.stderr)
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1, res.stderr
    assert lines[0].startswith("losscheck: error: "), lines[0]
    assert "Traceback" not in res.stderr + res.stdout
    for phrase in phrases:
        assert phrase in lines[0], (phrase, lines[0])
    return lines[0]


# ----------------------------------------------------------------------------------------------
# Legacy files give Keras-exact figures
# ----------------------------------------------------------------------------------------------
TFK_CASES = sorted(c for c in TFK_EXPECTED if c != "uncompiled")


@pytest.mark.parametrize("case", TFK_CASES)
def test_tfkeras_h5_matches_tfkeras_evaluate(case):
    res = compare(TFK / f"{case}.h5", TFK / f"{case}.npz", *EXTRA.get(case, []))
    assert res.code in (0, 1), res.stderr
    out = res.json
    assert out["model"]["saved_by"].startswith("tf.keras 2.")
    legacy = [f for f in out["findings"] if f["code"] == "legacy-keras"]
    assert len(legacy) == 1
    ev = out["figures"]["evaluate"]["value"]
    expected = TFK_EXPECTED[case]
    if "keras2_differs" in expected:
        assert rel(ev, expected["evaluate"]) > 1e-3  # a real semantic difference, explained below
        assert "differ for this model:" in legacy[0]["message"]
        assert WHY[case] in legacy[0]["message"]
    else:
        assert rel(ev, expected["evaluate"]) < 1e-4, (ev, expected)
        assert "same evaluate figure" in legacy[0]["message"]


def test_tfkeras_frozen_regularizer_difference_is_exactly_the_penalty():
    """Keras 2 counted the frozen layer's L2 penalty; Keras 3 (our figure) does not: the gap is that penalty."""
    import h5py

    res = compare(TFK / "frozen_reg.h5", TFK / "frozen_reg.npz")
    ev = res.json["figures"]["evaluate"]["value"]
    with h5py.File(TFK / "frozen_reg.h5", "r") as f:
        group = f["model_weights/frozen"]
        kernels = []
        group.visititems(lambda n, o: kernels.append(np.array(o)) if n.endswith("kernel:0") else None)
    penalty = 0.1 * float(np.sum(kernels[0].astype("float64") ** 2))
    assert rel(TFK_EXPECTED["frozen_reg"]["evaluate"] - ev, penalty) < 1e-4
    legacy = next(f for f in res.json["findings"] if f["code"] == "legacy-keras")
    assert "frozen layer(s) frozen" in legacy["message"]


def test_tfkeras_bce_on_unbounded_outputs_is_keras3_exact_and_explained():
    """Keras 2's log(p+eps) differs from Keras 3's log(p); the figure is what Keras 3 computes."""
    import keras

    res = compare(TFK / "bce_unbounded.h5", TFK / "bce_unbounded.npz")
    ev = res.json["figures"]["evaluate"]["value"]
    model = keras.saving.load_model(TFK / "bce_unbounded.h5", compile=False)
    with np.load(TFK / "bce_unbounded.npz") as f:
        x, y = f["x"], f["y"]
    model.compile(loss=keras.losses.BinaryCrossentropy())
    keras3 = model.evaluate(x, y, batch_size=32, verbose=0, return_dict=True)["loss"]
    assert rel(ev, keras3) < 1e-5
    legacy = next(f for f in res.json["findings"] if f["code"] == "legacy-keras")
    assert "binary crossentropy" in legacy["message"] and "eps" in legacy["message"]


K3_CASES = ["mse_str.h5", "sum_obj.h5", "custom_fn.keras", "registered.keras", "lambda.keras", "sparse.keras",
            "onehot.keras"]


@pytest.mark.parametrize("case", K3_CASES)
def test_keras3_files_match_keras_evaluate(case):
    data = K3 / (case.split(".")[0] + ".npz")
    res = compare(K3 / case, data, *EXTRA.get(case, []))
    assert res.code in (0, 1), res.stderr
    assert res.json["model"]["saved_by"].startswith("keras 3.")
    assert "legacy-keras" not in {f["code"] for f in res.json["findings"]}
    assert rel(res.json["figures"]["evaluate"]["value"], K3_EXPECTED[case]["evaluate"]) < 1e-4


def test_keras3_h5_that_keras_cannot_compile_itself():
    """Keras 3's own load_model(compile=True) fails on its own .h5 with loss "mse" + metrics ["accuracy"];
    losscheck recovers it (the test above checks the figure)."""
    import keras

    with pytest.raises(ValueError):
        keras.saving.load_model(K3 / "mse_str.h5")
    assert compare(K3 / "mse_str.h5", K3 / "mse_str.npz").code in (0, 1)


@pytest.mark.parametrize("objects", ["custom_classes.py", "custom_dict.py"])
def test_custom_layer_with_custom_objects_file(objects):
    res = compare(TFK / "custom_layer.h5", TFK / "custom_layer.npz", "--custom-objects", TFK / objects)
    assert res.code in (0, 1), res.stderr
    assert rel(res.json["figures"]["evaluate"]["value"], TFK_EXPECTED["custom_layer"]["evaluate"]) < 1e-4


def test_uncompiled_needs_loss_and_works_with_it():
    assert_refused(run_cli("inspect", TFK / "uncompiled.h5"), "uncompiled.h5", "without a compiled loss", "--loss")
    assert_refused(run_cli("inspect", K3 / "uncompiled.keras"), "uncompiled.keras", "--loss")
    res = compare(TFK / "uncompiled.h5", TFK / "uncompiled.npz", "--loss", "mse")
    assert res.code in (0, 1), res.stderr
    assert rel(res.json["figures"]["evaluate"]["value"], TFK_EXPECTED["uncompiled"]["evaluate_with_loss_mse"]) < 1e-4


def test_mse_none_is_keras3_exact():
    """Keras 3 reports the plain mean of a reduction="none" loss (Keras 2 weighted batches by n_b**2)."""
    import keras

    res = compare(TFK / "mse_none.h5", TFK / "mse_none.npz")
    model = keras.saving.load_model(TFK / "mse_none.h5", compile=False)
    with np.load(TFK / "mse_none.npz") as f:
        x, y = f["x"], f["y"]
    model.compile(loss=keras.losses.MeanSquaredError(reduction="none"))
    keras3 = model.evaluate(x, y, batch_size=32, verbose=0, return_dict=True)["loss"]
    assert rel(res.json["figures"]["evaluate"]["value"], keras3) < 1e-5


def test_loss_option_from_a_file():
    import keras

    spec = f"{TFK / 'custom_fns.py'}:cube_loss"
    res = compare(TFK / "uncompiled.h5", TFK / "uncompiled.npz", "--loss", spec)
    assert res.code in (0, 1), res.stderr
    model = keras.saving.load_model(TFK / "uncompiled.h5", compile=False)
    with np.load(TFK / "uncompiled.npz") as f:
        x, y = f["x"], f["y"]
    cube = float(np.mean(np.abs(model.predict(x, verbose=0).astype("float64") - y) ** 3))
    assert rel(res.json["figures"]["evaluate"]["value"], cube) < 1e-4
    assert_refused(run_cli("inspect", TFK / "uncompiled.h5", "--loss", f"{TFK / 'custom_fns.py'}:nope"),
                   "'nope'", "cube_loss")


def test_misnamed_model_file_still_loads(tmp_path):
    """Keras picks its loader by extension; losscheck by content (a .h5 named .bin, a .keras named .ZIP)."""
    shutil.copy(K3 / "mse_str.h5", tmp_path / "model.bin")
    shutil.copy(K3 / "custom_fn.keras", tmp_path / "MODEL.ZIP")
    res = run_cli("compare", tmp_path / "model.bin", K3 / "mse_str.npz", "--format", "json")
    assert res.code in (0, 1), res.stderr
    assert rel(res.json["figures"]["evaluate"]["value"], K3_EXPECTED["mse_str.h5"]["evaluate"]) < 1e-4
    res = run_cli("inspect", tmp_path / "MODEL.ZIP", "--custom-objects", K3 / "custom_fns.py")
    assert res.code in (0, 1), res.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["MODEL.ZIP", "model.bin"]


# ----------------------------------------------------------------------------------------------
# Refusals: one precise line each
# ----------------------------------------------------------------------------------------------
def test_missing_custom_objects_are_named_with_the_hint():
    assert_refused(run_cli("inspect", TFK / "custom_fn.h5"), "'cube_loss'", "--custom-objects")
    assert_refused(run_cli("inspect", TFK / "custom_layer.h5"), "'Scale'", "--custom-objects")
    assert_refused(run_cli("inspect", K3 / "custom_fn.keras"), "'cube_loss'", "--custom-objects")
    line = assert_refused(run_cli("inspect", TFK / "custom_layer.h5", "--custom-objects", TFK / "custom_fns.py"),
                          "'Scale'")
    assert "custom_fns.py does not define 'Scale'" in line
    line = assert_refused(run_cli("inspect", TFK / "registered.h5", "--custom-objects", TFK / "custom_fns.py"),
                          "'MyPkg>RegScale'")
    assert "custom_fns.py does not define 'RegScale'" in line


def test_lambda_refused_without_unsafe():
    for path in (TFK / "lambda_layer.h5", K3 / "lambda.keras"):
        assert_refused(run_cli("inspect", path), "Lambda", "--unsafe", "bytecode")


def test_broken_custom_objects_file(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("import sys\nraise RuntimeError('boom')\n")
    assert_refused(run_cli("inspect", TFK / "custom_fn.h5", "--custom-objects", bad), "bad.py", "RuntimeError: boom")
    exits = tmp_path / "exits.py"
    exits.write_text("import sys\nsys.exit(3)\n")
    assert_refused(run_cli("inspect", TFK / "custom_fn.h5", "--custom-objects", exits), "exits.py", "sys.exit(3)")
    syntax = tmp_path / "syntax.py"
    syntax.write_text("def f(:\n")
    assert_refused(run_cli("inspect", TFK / "custom_fn.h5", "--custom-objects", syntax), "SyntaxError")
    assert_refused(run_cli("inspect", TFK / "custom_fn.h5", "--custom-objects", tmp_path / "none.py"), "not found")
    assert not (tmp_path / "__pycache__").exists()


def test_unknown_loss_option():
    assert_refused(run_cli("inspect", TFK / "uncompiled.h5", "--loss", "not_a_loss"), "--loss", "'not_a_loss'")


def _keras_zip_without(src: Path, dst: Path, member: str) -> None:
    import zipfile

    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for name in zin.namelist():
            if name != member:
                zout.writestr(name, zin.read(name))


def test_each_broken_model_file_gets_its_own_message(tmp_path):
    import h5py
    import tensorflow as tf

    keras_bytes = (K3 / "sparse.keras").read_bytes()
    h5_bytes = (TFK / "mse_str.h5").read_bytes()
    (tmp_path / "trunc.keras").write_bytes(keras_bytes[: len(keras_bytes) // 2])
    (tmp_path / "garbage.keras").write_bytes(b"this is not a zip archive at all" * 20)
    (tmp_path / "garbage.h5").write_bytes(b"\0garbage" * 100)
    (tmp_path / "trunc.h5").write_bytes(h5_bytes[: len(h5_bytes) // 2])
    (tmp_path / "empty.keras").write_bytes(b"")
    _keras_zip_without(K3 / "sparse.keras", tmp_path / "noconfig.keras", "config.json")
    _keras_zip_without(K3 / "sparse.keras", tmp_path / "noweights.keras", "model.weights.h5")
    tf.saved_model.save(tf.Module(), str(tmp_path / "savedmodel"))
    (tmp_path / "adir").mkdir()
    (tmp_path / "not_a_dir").write_text("x")
    shutil.copy(TFK / "mse_str.h5", tmp_path / "badtc.h5")
    with h5py.File(tmp_path / "badtc.h5", "r+") as f:
        f.attrs["training_config"] = '{"loss": "mse", broken'
    with h5py.File(tmp_path / "data.h5", "w") as f:
        f["x"] = np.zeros((3, 4), "float32")
    cases = {
        "trunc.keras": ("damaged or truncated",),
        "garbage.keras": ("not a valid .keras archive",),
        "garbage.h5": ("not a valid HDF5 file",),
        "trunc.h5": ("is truncated",),
        "empty.keras": ("is empty (0 bytes)",),
        "noconfig.keras": ("no config.json",),
        "noweights.keras": ("no model.weights.h5",),
        "savedmodel": ("SavedModel directory", "model.save("),
        "adir": ("is a directory",),
        "missing.keras": ("not found",),
        "not_a_dir/model.h5": ("cannot be accessed",),
        "badtc.h5": ("training_config", "not valid JSON", "--loss"),
        "data.h5": ("HDF5 data file, not a model",),
    }
    seen = set()
    for name, phrases in cases.items():
        line = assert_refused(run_cli("inspect", tmp_path / name), name, *phrases)
        seen.add(line.split(": ", 3)[-1])
    assert len(seen) == len(cases)  # each its own message
    assert_refused(run_cli("inspect", TFK / "weights_only.h5"), "only weights", "save_weights")
    assert_refused(run_cli("inspect", K3 / "weights.weights.h5"), "only weights")
    assert_refused(run_cli("inspect", TFK / "k2_format.keras"), "tf.keras 2.", "Keras 3 cannot load", ".h5")
    assert_refused(run_cli("inspect", TFK / "removed_layer.h5"), "'LocallyConnected1D'", "Keras 3 no longer has")
    assert_refused(run_cli("inspect", K3 / "sparse.npz"), ".npz data file, not a model")
    res = run_cli("compare", tmp_path / "badtc.h5", TFK / "mse_str.npz", "--loss", "mse", "--format", "json")
    assert res.code in (0, 1), res.stderr  # a malformed compile config is fine with --loss


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads every file whatever its mode")
def test_unreadable_model_file(tmp_path):
    p = tmp_path / "model.h5"
    shutil.copy(TFK / "mse_str.h5", p)
    p.chmod(0)
    assert_refused(run_cli("inspect", p), "permission denied")


def test_debug_shows_traceback(tmp_path):
    (tmp_path / "garbage.keras").write_bytes(b"nope" * 10)
    res = run_cli("inspect", tmp_path / "garbage.keras", "--debug")
    assert res.code == 2 and "Traceback" in res.stderr


def test_keras2_differences_named_for_the_model(tmp_path):
    """The legacy-keras clauses come from the model itself: nested base called with training=False
    holding Dropout, a frozen regularized layer, BCE on an output no sigmoid produced."""
    import keras

    from losscheck.loading.legacy import keras2_differences
    from losscheck.loading.model import load_model
    from losscheck.measurements import ModelFacts
    from losscheck.rules.legacy import legacy_message

    L = keras.layers
    b_in = keras.Input((4,))
    base = keras.Model(b_in, L.Dropout(0.3)(L.Dense(4)(b_in)), name="base")
    inp = keras.Input((4,), name="x")
    h = L.Dense(4, kernel_regularizer="l2", name="frozen_dense")(base(inp, training=False))
    model = keras.Model(inp, L.Dense(1, name="out")(h))
    model.get_layer("frozen_dense").trainable = False
    model.compile("sgd", "binary_crossentropy")
    model.save(tmp_path / "m.keras")
    loaded = load_model(tmp_path / "m.keras")
    text = " ".join(d for d, _ in keras2_differences(loaded))
    assert "nested model(s) base" in text and "frozen layer(s) frozen_dense" in text
    assert "binary crossentropy" in text
    facts = ModelFacts(legacy=True, saved_by="tf.keras 2.15.0", keras2_differences=tuple(keras2_differences(loaded)))
    message, _ = legacy_message(facts)
    assert "differ for this model: (1)" in message


def test_tfkeras_layer_options_keras3_rejects():
    """Keras 3's own loader rejects every tf.keras RNN (time_major), DepthwiseConv2D (groups),
    SeparableConv2D (kernel_*), SpatialDropout (trainable) and nested model (node indices); losscheck
    adapts an in-memory copy of the config, says so in the notes, and reproduces tf.keras's evaluate
    (parametrized test above: rnn, conv_mix, nested)."""
    import keras

    for case, dropped in (("rnn", ["LSTM.time_major", "GRU.time_major"]),
                          ("conv_mix", ["DepthwiseConv2D.groups", "SpatialDropout2D.trainable"]),
                          ("nested", ["shifted the node indices of nested model(s) base"])):
        with pytest.raises((ValueError, TypeError)):
            keras.saving.load_model(TFK / f"{case}.h5", compile=False)
        res = compare(TFK / f"{case}.h5", TFK / f"{case}.npz")
        notes = " ".join(res.json.get("notes") or [])
        assert all(d in notes for d in dropped), notes


def test_tfkeras_layer_option_that_matters_is_refused(tmp_path):
    import h5py

    path = tmp_path / "time_major.h5"
    shutil.copy(TFK / "rnn.h5", path)
    with h5py.File(path, "r+") as f:
        config = f.attrs["model_config"]
        config = config.decode() if isinstance(config, bytes) else config
        assert '"time_major": false' in config
        f.attrs["model_config"] = config.replace('"time_major": false', '"time_major": true', 1)
    assert_refused(run_cli("inspect", path), "time_major=True", "tf.keras option Keras 3 does not have")


def test_resolve_tfkeras_loss_configs():
    """tf.keras loss configs as training_config stores them, rebuilt as the same Keras 3 losses."""
    import keras

    from losscheck.loading.losses import resolve_loss

    def cube(y_true, y_pred):
        return keras.ops.mean(keras.ops.abs(y_true - y_pred) ** 3, axis=-1)

    y_true = np.array([[0.0], [1.0], [2.0]], "float32")
    y_pred = np.array([[0.5], [3.0], [2.1]], "float32")
    huber = resolve_loss({"class_name": "Huber", "config": {"reduction": "AUTO", "name": "h", "delta": 2.0,
                                                            "fn": "huber", "from_keras_2_only": 1}}, {})
    assert huber.reduction == "sum_over_batch_size" and huber._fn_kwargs["delta"] == 2.0
    assert float(huber(y_true, y_pred)) == pytest.approx(float(keras.losses.Huber(delta=2.0)(y_true, y_pred)))
    wrapped = resolve_loss({"class_name": "LossFunctionWrapper", "config": {"reduction": "sum", "name": "c",
                                                                           "fn": "cube"}}, {"cube": cube})
    assert wrapped.reduction == "sum"
    assert float(wrapped(y_true, y_pred)) == pytest.approx(float(np.sum(np.abs(y_true - y_pred) ** 3)), rel=1e-6)
    assert float(resolve_loss("my>cube", {"cube": cube})(y_true, y_pred)) == pytest.approx(
        float(np.mean(np.abs(y_true - y_pred) ** 3)), rel=1e-6)
    assert float(resolve_loss("huber_loss", {})(y_true, y_pred)) == pytest.approx(
        float(keras.losses.Huber()(y_true, y_pred)))
    scce = resolve_loss({"class_name": "SparseCategoricalCrossentropy",
                         "config": {"reduction": "none", "from_logits": True, "ignore_class": None, "fn": "x"}}, {})
    assert scce.reduction == "none" and scce._fn_kwargs["from_logits"] is True
    with pytest.raises(LookupError):
        resolve_loss({"class_name": "LossFunctionWrapper", "config": {"fn": "nowhere"}}, {})
