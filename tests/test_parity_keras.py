"""compare --parity on models built for the purpose in tmp_path: each parity figure equals what Keras
itself reports under that setting (computed in the same test, another backend in a subprocess), and
each parity code fires where its difference is planted and not on a healthy fixture."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys

import numpy as np
import pytest

from tests.conftest import ROOT, fixture_files, rel, run_cli

pytestmark = pytest.mark.keras

PARITY_CODES = {"backend-difference", "xla-difference", "precision-difference"}


def _compare(model, data, *options):
    res = run_cli("compare", model, data, "--format", "json", *options)
    assert res.code in (0, 1), res.stderr
    out = res.json
    return {k: v["value"] for k, v in out["figures"].items()}, {f["code"]: f for f in out["findings"]}, out


def _save(tmp_path, model, x, y):
    path, data = tmp_path / "model.keras", tmp_path / "data.npz"
    model.save(path)
    np.savez(data, x=x, y=y)
    return path, data


def _mixed_model(policy: str):
    import keras

    keras.config.set_dtype_policy(policy)
    try:
        keras.utils.set_random_seed(3)
        inp = keras.Input((8,))
        h = keras.layers.Dense(16, activation="tanh", name="h")(inp)
        out = keras.layers.Dense(1, name="out")(h)
        model = keras.Model(inp, out)
    finally:
        keras.config.set_dtype_policy("float32")
    model.compile("sgd", "mse")
    return model


def test_precision_difference_sizes_mixed_precision(tmp_path):
    rng = np.random.default_rng(4)
    x = (rng.normal(size=(48, 8)) * 3).astype("float32")
    model = _mixed_model("mixed_float16")
    # targets a hair from the float32 outputs: float16 rounding of the outputs is most of the loss
    f32 = _mixed_model("float32")
    f32.set_weights(model.get_weights())
    y = (f32.predict(x, verbose=0) + 1e-3).astype("float32")
    path, data = _save(tmp_path, model, x, y)
    fig, found, out = _compare(path, data, "--parity", "float32")
    assert rel(fig["evaluate"], model.evaluate(x, y, batch_size=32, verbose=0)) < 1e-4
    assert rel(fig["evaluate_float32"], f32.evaluate(x, y, batch_size=32, verbose=0)) < 1e-4
    f = found["precision-difference"]
    assert f["between"] == ["evaluate", "evaluate_float32"]
    assert f["magnitude"] == fig["evaluate"] - fig["evaluate_float32"]
    assert "float16" in f["message"]
    # the same delta is not reported twice: with --parity float32 it is precision-difference alone
    assert not [f for f in out["findings"]
                if f["code"] == "mixed-precision" and f["between"] == ["evaluate", "evaluate_float32"]]


def test_xla_difference_when_jit_compile_changes_the_figure(tmp_path):
    import keras

    rng = np.random.default_rng(0)
    x = (rng.normal(size=(64, 64)) * 3).astype("float32")
    keras.utils.set_random_seed(0)
    inp = keras.Input((64,))
    h = keras.layers.Dense(64, activation="tanh")(inp)
    h = keras.layers.Dense(64, activation="sigmoid")(h)
    model = keras.Model(inp, keras.layers.Dense(16, activation="softmax")(h))
    y = (model.predict(x, verbose=0) + 1e-3).astype("float32")  # a loss of ~1e-6: rounding shows
    model.compile("sgd", "mse")
    path, data = _save(tmp_path, model, x, y)
    nojit = model.evaluate(x, y, batch_size=32, verbose=0)
    model.jit_compile = True
    model.test_function = None
    jit = model.evaluate(x, y, batch_size=32, verbose=0)
    assert jit != nojit  # XLA's fused tanh/sigmoid/softmax round differently on this model
    fig, found, _ = _compare(path, data, "--parity", "jit", "--rtol", "1e-9")
    assert rel(fig["evaluate_jit"], jit) < 1e-6 and rel(fig["evaluate_nojit"], nojit) < 1e-6
    f = found["xla-difference"]
    assert f["magnitude"] == fig["evaluate_jit"] - fig["evaluate_nojit"]
    # at the default tolerance the same rounding is no finding
    _, found, _ = _compare(path, data, "--parity", "jit")
    assert "xla-difference" not in found


def _keras_evaluate_on(backend: str, model, data) -> float:
    """Keras's own evaluate of the files on `backend`, in a fresh process."""
    code = ("import sys, numpy as np, keras; m = keras.saving.load_model(sys.argv[1]); d = np.load(sys.argv[2]); "
            "print(m.evaluate(d['x'], d['y'], batch_size=32, verbose=0))")
    env = {**os.environ, "KERAS_BACKEND": backend}
    done = subprocess.run([sys.executable, "-c", code, str(model), str(data)], env=env, capture_output=True,
                          text=True, timeout=300, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-2000:]
    return float(done.stdout.strip().splitlines()[-1])


@pytest.mark.jax
def test_backend_difference_names_the_logits_shortcut(tmp_path):
    if importlib.util.find_spec("jax") is None:
        pytest.skip('jax is not installed (pip install "losscheck[jax]")')
    import keras

    rng = np.random.default_rng(2)
    x = rng.normal(size=(40, 4)).astype("float32")
    y = np.eye(3, dtype="float32")[rng.integers(0, 3, size=40)]
    keras.utils.set_random_seed(2)
    inp = keras.Input((4,))
    out = keras.layers.Dense(3, activation="softmax",
                             kernel_initializer=keras.initializers.RandomNormal(stddev=40.0))(inp)
    model = keras.Model(inp, out)
    model.compile("sgd", "categorical_crossentropy")
    path, data = _save(tmp_path, model, x, y)
    fig, _, out = _compare(path, data, "--parity", "backends")
    assert rel(fig["evaluate_jax"], _keras_evaluate_on("jax", path, data)) < 1e-4
    f = next(f for f in out["findings"] if f["code"] == "backend-difference" and f["subject"] == "jax")
    assert f["between"] == ["evaluate_jax", "evaluate"] and f["subject"] == "jax"
    assert f["magnitude"] == fig["evaluate_jax"] - fig["evaluate"]
    assert f["magnitude"] < 0 and "logits shortcut" in f["message"]


def test_healthy_fixture_gets_no_parity_code():
    model, data = fixture_files("dense_story4")
    fig, found, out = _compare(model, data, "--parity", "backends,jit,float32")
    assert not set(found) & PARITY_CODES
    assert rel(fig["evaluate_jit"], fig["evaluate"]) < 1e-4 and rel(fig["evaluate_nojit"], fig["evaluate"]) < 1e-4
    others = [b for b in ("jax", "torch") if importlib.util.find_spec(b) is not None]
    for other in others:
        assert rel(fig[f"evaluate_{other}"], fig["evaluate"]) < 1e-4
    if not others:
        assert any("no other Keras backend is installed" in n for n in out["notes"])
    assert any("--parity float32: the model computes in float32 already" in n for n in out["notes"])


def test_parity_usage_error():
    model, data = fixture_files("dense_story4")
    res = run_cli("compare", model, data, "--parity", "backend,jit")
    assert res.code == 2 and "--parity" in res.stderr and "backends, jit, float32" in res.stderr


def test_api_parity_matches_the_cli():
    import losscheck

    model, data = fixture_files("dense_story4")
    report = losscheck.compare(str(model), str(data), parity=["jit"])
    fig, _, _ = _compare(model, data, "--parity", "jit")
    assert report.figures["evaluate_jit"].value == fig["evaluate_jit"]
    assert report.figures["evaluate_nojit"].value == fig["evaluate_nojit"]
    from losscheck.core.errors import UsageError

    with pytest.raises(UsageError, match="--parity"):
        losscheck.compare(str(model), str(data), parity="xla")
