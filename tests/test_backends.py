"""losscheck on the other Keras backends: the held-out comparison (evaluate and fit_epoch equal to what
Keras itself reports on that backend, the same finding codes as on TensorFlow) for the bundled fixtures.
Each backend runs in one subprocess started with `--backend NAME` and no KERAS_BACKEND
(tests/backend_worker.py), so this process stays on TensorFlow; skipped when the backend's package is not installed."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys

import pytest

from tests.conftest import ROOT, fixture_files, rel, run_cli

pytestmark = pytest.mark.keras

#: fixtures compared on every other backend: Dropout, frozen and trainable BatchNormalization,
#: regularization, two outputs, sample weights, a mask, and one with a TensorFlow-only loss path
FIXTURES = ("dense_story4", "frozen_bn_dropout", "bn_shift", "regularized", "two_outputs", "sample_weights",
            "masked_sequence", "saturated_softmax")
#: codes that differ between backends for a known reason: TensorFlow's crossentropy recovers the
#: logits of a softmax output (logits-shortcut) where the other backends clip the probabilities
BACKEND_CODES = {"saturated_softmax": {"tensorflow": {"logits-shortcut"}, "other": {"probability-clipping"}}}

_results: dict[str, dict] = {}
_stderr: dict[str, str] = {}


def backend_results(backend: str) -> dict:
    """{fixture: {"code", "report", "evaluate", "fit"}} from one subprocess on `backend` (its whole stderr,
    file descriptor 2, in _stderr[backend]). TF_CPP_MIN_LOG_LEVEL is not passed on: losscheck must quiet
    the backends' C++ logs itself."""
    if importlib.util.find_spec(backend) is None:
        pytest.skip(f"{backend} is not installed (pip install \"losscheck[{backend}]\")")
    if backend not in _results:
        env = {k: v for k, v in os.environ.items() if k not in ("KERAS_BACKEND", "TF_CPP_MIN_LOG_LEVEL")}
        done = subprocess.run([sys.executable, "-m", "tests.backend_worker", backend, *FIXTURES], cwd=ROOT, env=env,
                              capture_output=True, text=True, timeout=900)
        assert done.returncode == 0, done.stderr[-3000:]
        _results[backend] = json.loads(done.stdout)
        _stderr[backend] = done.stderr
    return _results[backend]


_tf_codes: dict[str, set[str]] = {}


def tensorflow_codes(name: str) -> set[str]:
    """The finding codes of the same compare in this (TensorFlow) process."""
    if name not in _tf_codes:
        model, data = fixture_files(name)
        res = run_cli("compare", model, data, "--format", "json")
        assert res.code in (0, 1), res.stderr
        _tf_codes[name] = {f["code"] for f in res.json["findings"]}
    return _tf_codes[name]


def check_backend(backend: str, name: str) -> None:
    entry = backend_results(backend)[name]
    assert entry["code"] in (0, 1), entry["stderr"]
    report = entry["report"]
    assert report["backend"] == backend
    fig = {k: v["value"] for k, v in report["figures"].items()}
    assert rel(fig["evaluate"], entry["evaluate"]) < 1e-4
    assert rel(fig["fit_epoch"], entry["fit"]) < 1e-4
    assert rel(fig["manual"] + fig["regularization"], entry["evaluate"]) < 1e-4
    codes = {f["code"] for f in report["findings"]}
    expected = tensorflow_codes(name)
    known = BACKEND_CODES.get(name)
    if known:
        assert known["tensorflow"] <= expected and known["other"] <= codes
        expected = (expected - known["tensorflow"]) | known["other"]
    assert codes == expected


@pytest.mark.jax
@pytest.mark.parametrize("name", FIXTURES)
def test_jax_figures_are_keras_own_on_jax(name):
    check_backend("jax", name)


@pytest.mark.torch
@pytest.mark.parametrize("name", FIXTURES)
def test_torch_figures_are_keras_own_on_torch(name):
    """frozen_bn_dropout included: on torch a Dropout without a seed draws its masks from torch's global
    generator, which Keras's fit of a fresh load also draws a DataLoader seed from before its first step
    (probes/fitting.py::_fresh_fit_draw)."""
    check_backend("torch", name)


def test_header_names_the_backend_run_on():
    model, data = fixture_files("dense_story4")
    res = run_cli("compare", model, data, "--format", "json")
    assert res.json["backend"] == "tensorflow"


@pytest.mark.parametrize("backend", [pytest.param("jax", marks=pytest.mark.jax),
                                     pytest.param("torch", marks=pytest.mark.torch)])
def test_no_backend_logging_on_stderr(backend):
    """Nothing of the backend's own (TensorFlow's C++/absl start-up lines, which Keras imports on every
    backend; JAX's or PyTorch's warnings) reaches stderr, as on the TensorFlow backend
    (tests/test_inputs_guarantees.py): the worker's eight compares, in a real process."""
    backend_results(backend)
    assert _stderr[backend] == ""
