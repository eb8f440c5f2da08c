"""--distribute mirrored on 2 logical CPU devices (a subprocess: the devices must be split before
TensorFlow initializes them): the same figures as one device, evaluate_distributed equal to Keras's own
distributed evaluate, fit_epoch_one_device equal to Keras's own fit on one device, no
distribution-scaling where Keras's distributed figures equal the one-device ones, and
distribution-scaling naming BatchNormalization where per-replica batch statistics change fit."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from tests.conftest import ROOT, fixture_files, rel, run_cli

pytestmark = pytest.mark.keras

LOSS_FILE = '''
import keras


@keras.saving.register_keras_serializable(package="lc_dist")
def fixed_batch_mse(y_true, y_pred):
    """Sum of squares over a hard-coded global batch of 32: wrong on each replica's half batch."""
    return keras.ops.sum(keras.ops.square(y_true - y_pred)) / 32.0
'''


def _scaled_model(tmp_path):
    import importlib.util

    import keras

    (tmp_path / "losses.py").write_text(LOSS_FILE)
    spec = importlib.util.spec_from_file_location("lc_dist_losses", tmp_path / "losses.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    rng = np.random.default_rng(5)
    x = rng.normal(size=(128, 4)).astype("float32")
    y = (x @ rng.normal(size=(4, 1)) + 0.1 * rng.normal(size=(128, 1))).astype("float32")
    keras.utils.set_random_seed(5)
    inp = keras.Input((4,))
    model = keras.Model(inp, keras.layers.Dense(1)(inp))
    model.compile(keras.optimizers.SGD(0.05), module.fixed_batch_mse)
    model.save(tmp_path / "model.keras")
    np.savez(tmp_path / "data.npz", x=x, y=y)
    one_device = keras.saving.load_model(tmp_path / "model.keras").fit(
        x, y, batch_size=32, epochs=1, shuffle=False, verbose=0).history["loss"][-1]
    return tmp_path / "model.keras", tmp_path / "data.npz", tmp_path / "losses.py", one_device


def test_two_cpu_devices_give_the_one_device_figures(tmp_path):
    healthy_model, healthy_data = fixture_files("dense_story4")
    model, data, losses, keras_one_device_fit = _scaled_model(tmp_path)
    bn_model, bn_data = fixture_files("bn_shift")
    cases = [[str(healthy_model), str(healthy_data), None], [str(model), str(data), str(losses)],
             [str(bn_model), str(bn_data), None]]
    done = subprocess.run([sys.executable, "-m", "tests.distribute_worker", json.dumps(cases)], cwd=ROOT,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    out = json.loads(done.stdout)
    (healthy, scaled, bn), (keras_healthy, keras_scaled, _) = out["reports"], out["keras_evaluate"]
    assert healthy["code"] in (0, 1), healthy["stderr"]
    two = {k: v["value"] for k, v in healthy["report"]["figures"].items()}
    one_res = run_cli("compare", healthy_model, healthy_data, "--format", "json")
    one = {k: v["value"] for k, v in one_res.json["figures"].items()}
    for name in ("evaluate", "manual", "train_mode", "fit_epoch"):
        assert rel(two[name], one[name]) < 1e-4, name
    assert rel(two["fit_epoch_one_device"], one["fit_epoch"]) < 1e-4
    assert rel(two["evaluate_distributed"], keras_healthy) < 1e-4
    assert rel(two["evaluate_distributed"], one["evaluate"]) < 1e-4
    assert "distribution-scaling" not in {f["code"] for f in healthy["report"]["findings"]}
    assert any("2 replica(s)" in n for n in healthy["report"]["notes"])

    assert scaled["code"] in (0, 1), scaled["stderr"]
    fig = {k: v["value"] for k, v in scaled["report"]["figures"].items()}
    assert rel(fig["evaluate_distributed"], keras_scaled) < 1e-4
    assert rel(fig["fit_epoch_one_device"], keras_one_device_fit) < 1e-4
    # Keras 3 feeds each replica's loss the way one device sees it, so even this fixed-divisor loss gives
    # the one-device figures: nothing to report (the rule's firing cases: tests/test_rules_parity.py)
    assert rel(fig["fit_epoch"], keras_one_device_fit) < 1e-4
    assert "distribution-scaling" not in {f["code"] for f in scaled["report"]["findings"]}

    # trainable BatchNormalization: each replica normalizes its half batch with its own statistics, so
    # the distributed fit differs from one device; the finding names that cause
    assert bn["code"] in (0, 1), bn["stderr"]
    fig = {k: v["value"] for k, v in bn["report"]["figures"].items()}
    one_bn = run_cli("compare", bn_model, bn_data, "--format", "json").json["figures"]
    assert rel(fig["fit_epoch_one_device"], one_bn["fit_epoch"]["value"]) < 1e-4
    f = next(f for f in bn["report"]["findings"] if f["code"] == "distribution-scaling")
    assert f["between"] == ["fit_epoch", "fit_epoch_one_device"]
    assert f["magnitude"] == fig["fit_epoch"] - fig["fit_epoch_one_device"]
    assert "BatchNormalization" in f["message"]


def test_distribute_usage():
    model, data = fixture_files("dense_story4")
    res = run_cli("compare", model, data, "--distribute", "ring")
    assert res.code == 2 and "--distribute" in res.stderr


@pytest.mark.jax
def test_jax_data_parallel_on_two_host_devices_gives_the_one_device_figures():
    import importlib.util
    import os

    if importlib.util.find_spec("jax") is None:
        pytest.skip('jax is not installed (pip install "losscheck[jax]")')
    model, data = fixture_files("dense_story4")
    code = ("import sys; from tests.conftest import run_cli; "
            "r = run_cli('compare', sys.argv[1], sys.argv[2], '--format', 'json', '--backend', 'jax', "
            "'--distribute', 'mirrored'); print(r.stdout if r.code in (0, 1) else r.stderr)")
    env = {k: v for k, v in os.environ.items() if k != "KERAS_BACKEND"}
    env["XLA_FLAGS"] = "--xla_force_host_platform_device_count=2"
    done = subprocess.run([sys.executable, "-c", code, str(model), str(data)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    out = json.loads(done.stdout)
    fig = {k: v["value"] for k, v in out["figures"].items()}
    assert out["backend"] == "jax"
    assert any("2 replica(s)" in n for n in out["notes"])
    assert rel(fig["evaluate_distributed"], fig["evaluate"]) < 1e-4
    assert rel(fig["fit_epoch"], fig["fit_epoch_one_device"]) < 1e-4
    assert "distribution-scaling" not in {f["code"] for f in out["findings"]}
