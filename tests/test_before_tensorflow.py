"""Mistakes that need no Keras are answered before TensorFlow is imported: the CLI runs with tensorflow and
keras made unimportable (packages first on PYTHONPATH that raise on import) and still gives the one line."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile

import numpy as np
import pytest
from conftest import ROOT, fixture_files


@pytest.fixture(scope="module")
def no_tensorflow(tmp_path_factory):
    """A PYTHONPATH entry whose tensorflow and keras packages raise ImportError on import."""
    root = tmp_path_factory.mktemp("no_tf")
    for name in ("tensorflow", "keras", "tf_keras"):
        (root / name).mkdir()
        (root / name / "__init__.py").write_text(f'raise ImportError("{name} is made unimportable")\n')
    return root


def _run(no_tensorflow, *args):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(no_tensorflow), str(ROOT)]))
    done = subprocess.run([sys.executable, "-m", "losscheck", *map(str, args)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)
    assert "unimportable" not in done.stderr, done.stderr
    return done


def _bomb(path):
    """An .npz whose x member inflates 300 MiB of zeros behind an honest header (tests/test_security_bombs.py)."""
    from test_security_bombs import MIB, _npy_header, zeros_member

    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1) as zf:
        zeros_member(zf, "x.npy", 300, head=_npy_header((300 * MIB // 16, 4)))
        with zf.open("y.npy", "w") as fh:
            np.lib.format.write_array(fh, np.zeros((4, 1), "float32"))
    return path


def _weights_only(path):
    """What model.save_weights writes: an HDF5 file with the weights and no architecture."""
    import h5py

    with h5py.File(path, "w") as f:
        f.create_group("layers").create_group("dense").create_group("vars")["0"] = np.zeros((2, 2), "float32")
    return path


def _keras_bomb(path):
    from test_security_bombs import bomb_keras

    return bomb_keras(path, weights_mib=300)


@pytest.mark.parametrize("case, phrase", [
    ("data as model", "is an .npz data file, not a model file"),
    ("missing model", "model file not found"),
    ("missing --val", "data file not found"),
    ("missing --history", "--history"),
    ("missing --custom-objects", "--custom-objects file not found"),
    ("bomb", "decompression bomb"),
    ("weights only", "holds only weights"),
    ("keras bomb", "decompression bomb"),
])
def test_answered_before_tensorflow(no_tensorflow, tmp_path, case, phrase):
    model, data = fixture_files("dense_story4")
    args = {"data as model": [data, data], "missing model": [tmp_path / "nope.keras", data],
            "missing --val": [model, data, "--val", tmp_path / "nope.npz"],
            "missing --history": [model, data, "--history", tmp_path / "nope.json"],
            "missing --custom-objects": [model, data, "--custom-objects", tmp_path / "nope.py"],
            "bomb": [model, _bomb(tmp_path / "bomb.npz")],
            "weights only": [_weights_only(tmp_path / "w.weights.h5"), data],
            "keras bomb": [_keras_bomb(tmp_path / "bomb.keras"), data]}[case]
    done = _run(no_tensorflow, "compare", *args)
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and phrase in lines[0], done.stderr
