"""compare --parity backends: the one-epoch fit on each other installed backend (fit_epoch_<backend>) equals
what Keras's own fit of the same files gives on that backend (seeded as losscheck seeds it, in a
subprocess started with KERAS_BACKEND), and a difference is a backend-difference naming the training step
(the random layers first)."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys

import pytest

from tests.conftest import ROOT, fixture_files, rel, run_cli

pytestmark = pytest.mark.keras

#: Keras's own one-epoch fit of a model file on an .npz, as losscheck runs it: seeded (0) before the load (a
#: Dropout without a seed takes its seed state from Python's generator when built) and before fit
KERAS_FIT = """import sys, numpy as np, keras
keras.utils.set_random_seed(0)
m = keras.saving.load_model(sys.argv[1])
d = np.load(sys.argv[2])
keras.utils.set_random_seed(0)
h = m.fit(d['x'], d['y'], batch_size=32, epochs=1, shuffle=False, verbose=0)
print(h.history['loss'][0])
"""


def _keras_fit_on(backend: str, model, data) -> float:
    env = {**os.environ, "KERAS_BACKEND": backend}
    done = subprocess.run([sys.executable, "-c", KERAS_FIT, str(model), str(data)], env=env, capture_output=True,
                          text=True, timeout=300, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-2000:]
    return float(done.stdout.strip().splitlines()[-1])


def _need(backend: str) -> None:
    if importlib.util.find_spec(backend) is None:
        pytest.skip(f'{backend} is not installed (pip install "losscheck[{backend}]")')


def _parity(name: str):
    model, data = fixture_files(name)
    res = run_cli("compare", model, data, "--format", "json", "--parity", "backends")
    assert res.code in (0, 1), res.stderr
    fig = {k: v["value"] for k, v in res.json["figures"].items()}
    fits = [f for f in res.json["findings"] if f["code"] == "backend-difference"
            and f["between"][0].startswith("fit_epoch_")]
    return model, data, fig, fits


@pytest.mark.jax
def test_fit_epoch_jax_is_jax_keras_own_fit_on_a_deterministic_model():
    _need("jax")
    model, data, fig, fits = _parity("dense_story4")
    assert rel(fig["fit_epoch_jax"], _keras_fit_on("jax", model, data)) < 1e-4
    assert rel(fig["fit_epoch_jax"], fig["fit_epoch"]) < 1e-4  # no random layer: the same training
    assert not [f for f in fits if f["subject"] == "jax"]


@pytest.mark.jax
def test_a_dropout_fit_differs_across_backends_and_the_finding_names_the_layer():
    """Each backend draws its own Dropout masks: fit_epoch_jax is JAX Keras's own fit, not TensorFlow's."""
    _need("jax")
    model, data, fig, fits = _parity("frozen_bn_dropout")
    assert rel(fig["fit_epoch_jax"], _keras_fit_on("jax", model, data)) < 1e-4
    (f,) = [f for f in fits if f["subject"] == "jax"]
    assert f["between"] == ["fit_epoch_jax", "fit_epoch"]
    assert f["magnitude"] == fig["fit_epoch_jax"] - fig["fit_epoch"]
    assert "head_dropout" in f["message"] and "masks" in f["message"]


@pytest.mark.torch
@pytest.mark.slow
def test_fit_epoch_torch_is_torch_keras_own_fit_with_dropout():
    """On torch a Dropout without a seed draws from torch's global generator; the fit probe draws what
    Keras's fit of a fresh load draws (probes/fitting.py::_fresh_fit_draw)."""
    _need("torch")
    model, data, fig, _ = _parity("frozen_bn_dropout")
    assert rel(fig["fit_epoch_torch"], _keras_fit_on("torch", model, data)) < 1e-4
