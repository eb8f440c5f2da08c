"""Interrupted runs leave nothing behind: SIGTERM (a CI job cancelled) ends a run like Ctrl-C, with
one line, exit 143, and a clean temp dir (no Keras home, no autograph files); Keras never unpacks a
large model's weights beside the user's file, and Ctrl-C while it does still stops the run."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest

from tests.conftest import ROOT, run_cli

pytestmark = pytest.mark.keras

SLOW_LOSS = '''
import os, time
import keras

def slow_loss(y_true, y_pred):
    open(os.environ["LOSSCHECK_TEST_MARKER"], "w").close()  # traced: TensorFlow and autograph are at work
    time.sleep(60)
    return keras.ops.mean((y_true - y_pred) ** 2, axis=-1)
'''


def small_model(folder: Path) -> tuple[Path, Path]:
    import keras
    import numpy as np

    rng = np.random.default_rng(3)
    keras.utils.set_random_seed(3)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(8, activation="relu"), keras.layers.Dense(1)])
    model.compile("adam", "mse")
    model.save(folder / "model.keras")
    np.savez(folder / "data.npz", x=rng.normal(size=(40, 4)).astype("float32"),
             y=rng.normal(size=(40, 1)).astype("float32"))
    return folder / "model.keras", folder / "data.npz"


@pytest.mark.parametrize("signum, code, word", [
    (signal.SIGTERM, 143, "terminated"),
    pytest.param(signal.SIGINT, 2, "interrupted", marks=pytest.mark.slow),  # the in-process Ctrl-C test below is fast
])
def test_a_signal_mid_run_cleans_up_and_says_so(tmp_path, signum, code, word):
    work, tmp, home = tmp_path / "work", tmp_path / "tmp", tmp_path / "home"
    for d in (work, tmp, home):
        d.mkdir()
    model, data = small_model(work)
    (work / "slow.py").write_text(SLOW_LOSS)
    marker = tmp_path / "traced"
    before = sorted(p.name for p in work.iterdir())
    env = {k: v for k, v in os.environ.items() if k not in ("KERAS_HOME", "MPLCONFIGDIR", "KERAS_BACKEND")}
    env.update(TMPDIR=str(tmp), HOME=str(home), PYTHONPATH=str(ROOT), LOSSCHECK_TEST_MARKER=str(marker))
    proc = subprocess.Popen([sys.executable, "-m", "losscheck", "compare", str(model), str(data), "--loss",
                             str(work / "slow.py") + ":slow_loss"], cwd=work, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 240
        while not marker.exists():
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "the loss was never traced"
            time.sleep(0.2)
        assert any(p.name.startswith("losscheck-keras-home-") for p in tmp.iterdir())  # the state to clean up
        proc.send_signal(signum)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == code, err
    assert out == ""
    assert err.splitlines()[0].startswith(f"losscheck: {word}") and len(err.splitlines()) == 1, err
    assert list(tmp.iterdir()) == []  # no keras home, no __autograph_generated_file*.py, no unpacked weights
    assert list(home.iterdir()) == []
    assert sorted(p.name for p in work.iterdir()) == before


def _extractions(monkeypatch) -> list[str]:
    """Force Keras's large-model path (weights unpacked to disk: what a model over half the RAM Keras
    assumes, 1 GB without psutil, gets) and record where it unpacks."""
    from keras.src.saving import saving_lib

    monkeypatch.setattr(saving_lib, "_MEMORY_UPPER_BOUND", 0.0)
    where: list[str] = []
    real = zipfile.ZipFile.extract

    def extract(self, member, path=None, pwd=None):
        where.append(str(path))
        return real(self, member, path, pwd)

    monkeypatch.setattr(zipfile.ZipFile, "extract", extract)
    return where


def test_large_model_weights_are_never_unpacked_beside_the_model(tmp_path, monkeypatch):
    model, data = small_model(tmp_path)
    where = _extractions(monkeypatch)
    before = sorted(p.name for p in tmp_path.iterdir())
    result = run_cli("compare", model, data, "--format", "json")
    assert result.code in (0, 1), result.stderr
    assert where, "Keras did not take the unpack-to-disk path"
    for folder in where:
        assert Path(folder).parent.parent != tmp_path and not Path(folder).is_relative_to(tmp_path)
        assert not Path(folder).exists()  # removed again
    assert sorted(p.name for p in tmp_path.iterdir()) == before


def test_ctrl_c_while_keras_unpacks_the_weights_stops_the_run(tmp_path, monkeypatch):
    """Keras reads the weights inside a bare `except:` that falls back to reading them from the zip:
    a Ctrl-C there is swallowed by Keras, and must still end the run."""
    model, data = small_model(tmp_path)
    where = _extractions(monkeypatch)
    real = zipfile.ZipFile.extract

    def interrupted(self, member, path=None, pwd=None):
        where.append(str(path))
        os.kill(os.getpid(), signal.SIGINT)  # the handler raises KeyboardInterrupt here
        time.sleep(1)
        return real(self, member, path, pwd)

    monkeypatch.setattr(zipfile.ZipFile, "extract", interrupted)
    before = sorted(p.name for p in tmp_path.iterdir())
    result = run_cli("compare", model, data)
    assert where
    assert result.code == 2 and result.stdout == ""
    assert result.stderr.splitlines() == ["losscheck: interrupted; no report was written"]
    assert sorted(p.name for p in tmp_path.iterdir()) == before
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # the handler is the run's only
