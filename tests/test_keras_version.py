"""A model file saved by a newer Keras than the installed one: when it loads, nothing changes; when
it does not, the error says which Keras saved it and which to install, not "damaged"."""

from __future__ import annotations

import json
import zipfile

import pytest

pytestmark = pytest.mark.keras


def _saved_model(tmp_path):
    import numpy as np

    from losscheck._tf import keras

    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2, name="d")])
    model.compile(loss="mse")
    path = tmp_path / "model.keras"
    model.save(path)
    np.savez(tmp_path / "data.npz", x=np.zeros((4, 3), "float32"), y=np.zeros((4, 2), "float32"))
    return path


def _patched(src, dst, version: str, break_config: bool):
    """A copy of the archive whose metadata says `version`, and (optionally) whose config names a
    layer option the installed Keras does not know."""
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for item in zin.infolist():
            data = zin.read(item.filename)
            if item.filename == "metadata.json":
                meta = json.loads(data)
                meta["keras_version"] = version
                data = json.dumps(meta).encode()
            elif item.filename == "config.json" and break_config:
                config = json.loads(data)
                del config["config"]["layers"][-1]["config"]  # a layer config this Keras cannot read
                data = json.dumps(config).encode()
            zout.writestr(item, data)
    return dst


def test_newer_keras_file_that_fails_names_the_version_to_install(tmp_path, cli):
    from losscheck._tf import keras

    src = _saved_model(tmp_path)
    bad = _patched(src, tmp_path / "newer.keras", "9.1.0", break_config=True)
    result = cli("inspect", bad)
    assert result.code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "saved by Keras 9.1.0" in lines[0] and f"installed Keras {keras.__version__}" in lines[0]
    assert "pip install 'keras>=9.1.0'" in lines[0]
    assert "damaged" not in lines[0]


def test_newer_keras_file_that_loads_is_fine(tmp_path, cli):
    src = _saved_model(tmp_path)
    ok = _patched(src, tmp_path / "newer_ok.keras", "9.1.0", break_config=False)
    result = cli("inspect", ok, "--format", "json")
    assert result.code == 0, result.stderr
    assert result.json["model"]["saved_by"] == "keras 9.1.0"


def test_same_version_damaged_file_is_still_called_damaged(tmp_path, cli):
    from losscheck._tf import keras

    src = _saved_model(tmp_path)
    bad = _patched(src, tmp_path / "damaged.keras", keras.__version__, break_config=True)
    result = cli("inspect", bad)
    assert result.code == 2
    assert "newer than the installed" not in result.stderr
