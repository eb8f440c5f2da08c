"""Messages that say what is really wrong: a dangling or group-typed `x` in .h5 data, a model passed as
DATA, NaN class labels, an optimizer Keras does not know (the run goes on, as the note says)."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import pytest

from tests.conftest import rel, run_cli

pytestmark = pytest.mark.keras


@pytest.fixture(scope="module")
def classifier(tmp_path_factory) -> tuple[Path, Path, dict]:
    """A 3-class sparse-crossentropy classifier (.keras and .h5) and its data."""
    import keras
    import numpy as np

    folder = tmp_path_factory.mktemp("messages")
    rng = np.random.default_rng(11)
    keras.utils.set_random_seed(11)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, activation="softmax", name="probs")])
    model.compile("adam", "sparse_categorical_crossentropy")
    model.save(folder / "model.keras")
    model.save(folder / "model.h5")
    arrays = {"x": rng.normal(size=(30, 4)).astype("float32"), "y": rng.integers(0, 3, size=(30,)).astype("float32")}
    np.savez(folder / "data.npz", **arrays)
    return folder / "model.keras", folder / "data.npz", arrays


def one_line(result, *needles: str) -> str:
    assert result.code == 2, (result.code, result.stdout[:300], result.stderr)
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("losscheck: error: "), result.stderr
    assert "internal error" not in lines[0]
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    return lines[0]


def test_dangling_or_group_x_in_h5_data(tmp_path, classifier):
    import h5py

    model, _, arrays = classifier
    with h5py.File(tmp_path / "dangling.h5", "w") as f:
        f["y"] = arrays["y"]
        f["x"] = h5py.SoftLink("/nowhere")
    line = one_line(run_cli("compare", model, tmp_path / "dangling.h5"), "dangling.h5",
                    "'x' is a soft link to /nowhere")
    assert "found 'y'" not in line
    with h5py.File(tmp_path / "group.h5", "w") as f:
        f["y"] = arrays["y"]
        f.create_group("x")["data"] = arrays["x"]
    one_line(run_cli("compare", model, tmp_path / "group.h5"), "group.h5", "'x' is an HDF5 group, not a dataset")


@pytest.mark.parametrize("which", ["model.keras", "model.h5"])
def test_a_model_passed_as_data(classifier, which):
    model, _, _ = classifier
    line = one_line(run_cli("compare", model, model.parent / which), which, "is a Keras model file",
                    "not a data file", "pass the model first, then the data")
    assert "config.json" not in line


def test_nan_sparse_labels_are_named_nan(tmp_path, classifier):
    import numpy as np

    model, _, arrays = classifier
    y = arrays["y"].copy()
    y[5] = np.nan
    np.savez(tmp_path / "nan.npz", x=arrays["x"], y=y)
    line = one_line(run_cli("compare", model, tmp_path / "nan.npz"), "nan.npz", "'y' holds nan", "sample 5",
                    "class index 0..2")
    assert "-9223372036854775808" not in line


def test_an_unknown_optimizer_in_the_file_leaves_only_fit_out(tmp_path, classifier):
    """The optimizer only matters for the fit probe: fit_epoch is left out (a fit with another optimizer
    is not the user's fit) and the note says how to fix it; every other figure is measured."""
    import keras

    model, data, arrays = classifier
    bogus = tmp_path / "bogus_optimizer.keras"
    with zipfile.ZipFile(model) as src, zipfile.ZipFile(bogus, "w") as dst:
        for name in src.namelist():
            raw = src.read(name)
            if name == "config.json":
                config = json.loads(raw)
                config["compile_config"]["optimizer"] = {"module": "keras.optimizers", "class_name": "Bogus",
                                                         "config": {}, "registered_name": None}
                raw = json.dumps(config).encode()
            dst.writestr(name, raw)
    result = run_cli("compare", bogus, data, "--format", "json")
    assert result.code in (0, 1), result.stderr
    doc = result.json
    assert any("'Bogus'" in n and "fit_epoch is not measured" in n and "--custom-objects" in n for n in doc["notes"])
    assert "fit_epoch" not in doc["figures"] and "fit_val" not in doc["figures"]
    assert "weight-update" not in {f["code"] for f in doc["findings"]}
    assert "train_mode" in doc["figures"]
    reference = keras.saving.load_model(model)
    expected = reference.evaluate(arrays["x"], arrays["y"], batch_size=32, verbose=0)
    assert rel(doc["figures"]["evaluate"]["value"], expected) < 1e-4
