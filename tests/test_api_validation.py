"""`losscheck.compare(..., validation_data=, validation_split=, history=)` against Keras in the same test:
evaluate_val equals model.evaluate on the validation data, for arrays, a tf.data pipeline and through
the CLI's --val on the same model and data saved to files; generalization-gap follows the gap."""

from __future__ import annotations

import json

import numpy as np
import pytest

import losscheck
from tests.conftest import rel, run_cli

pytestmark = pytest.mark.keras

BATCH = 32


def _arrays(n: int, seed: int, shift: float):
    rng = np.random.default_rng(seed)
    x = (rng.normal(size=(n, 5)) + shift).astype("float32")
    y = (x[:, :1] - shift + 0.5 * rng.normal(size=(n, 1)) > 0).astype("float32")
    return x, y


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """A deterministic model (no random layers) trained with validation data, its History JSON, and
    the same model and data saved as files."""
    import keras

    x, y = _arrays(96, 0, 0.0)
    xv, yv = _arrays(64, 1, 0.7)  # shifted inputs: the validation loss differs from the training loss
    keras.utils.set_random_seed(3)
    model = keras.Sequential([keras.Input((5,)), keras.layers.Dense(8, activation="relu"),
                              keras.layers.Dense(1, activation="sigmoid")])
    model.compile(optimizer="adam", loss="binary_crossentropy")
    hist = model.fit(x, y, batch_size=BATCH, epochs=2, validation_data=(xv, yv), verbose=0)
    folder = tmp_path_factory.mktemp("apival")
    (folder / "history.json").write_text(json.dumps(hist.history))
    model.save(folder / "model.keras")
    np.savez(folder / "train.npz", x=x, y=y)
    np.savez(folder / "val.npz", x=xv, y=yv)
    return model, x, y, xv, yv, folder


def test_validation_data_arrays_give_keras_evaluate_and_the_generalization_gap(setup):
    model, x, y, xv, yv, folder = setup
    expected = model.evaluate(xv, yv, batch_size=BATCH, verbose=0)
    report = losscheck.compare(model, x=x, y=y, validation_data=(xv, yv), history=folder / "history.json")
    fig = {k: f.value for k, f in report.figures.items()}
    assert rel(fig["evaluate_val"], expected) < 1e-4
    assert rel(fig["evaluate"], model.evaluate(x, y, batch_size=BATCH, verbose=0)) < 1e-4
    assert "fit_val" in fig
    gap = fig["evaluate"] - fig["evaluate_val"]
    assert abs(gap) > 1e-4 * abs(fig["evaluate"])
    found = [f for f in report.findings if f.code == "generalization-gap"]
    assert found and found[0].magnitude == pytest.approx(gap, rel=1e-6)
    # the saved weights are the end of training: the last epoch's logged val_loss matches them
    assert report.to_dict()["history"]["matched_epoch"] == 2
    # the CLI's --val on the same model and data, saved to files, gives the same figure
    res = run_cli("compare", folder / "model.keras", folder / "train.npz", "--val", folder / "val.npz",
                  "--format", "json")
    assert res.code == 0, res.stderr
    assert rel(res.json["figures"]["evaluate_val"]["value"], fig["evaluate_val"]) < 1e-4
    assert any(f["code"] == "generalization-gap" for f in res.json["findings"])


def test_validation_data_tf_data_gives_the_same_figure_and_no_gap_on_the_same_data(setup):
    import tensorflow as tf

    model, x, y, xv, yv, _ = setup
    expected = model.evaluate(xv, yv, batch_size=BATCH, verbose=0)
    pipeline = tf.data.Dataset.from_tensor_slices((xv, yv)).batch(BATCH)
    report = losscheck.compare(model, data=(x, y), validation_data=pipeline)
    assert rel(report.figures["evaluate_val"].value, expected) < 1e-4
    assert report.header["data"]["validation"]["path"] == "<tf.data.Dataset>"
    # validating on the training data itself: no generalization gap
    same = losscheck.compare(model, x=x, y=y, validation_data={"x": x, "y": y})
    assert rel(same.figures["evaluate_val"].value, same.figures["evaluate"].value) < 1e-6
    assert not [f for f in same.findings if f.code == "generalization-gap"]


def test_validation_split_is_the_last_rows_as_keras_cuts_them(setup):
    model, x, y, *_ = setup
    report = losscheck.compare(model, x=x, y=y, validation_split=0.25)
    at = int(np.floor(len(x) * 0.75))
    assert rel(report.figures["evaluate_val"].value, model.evaluate(x[at:], y[at:], batch_size=BATCH, verbose=0)) < 1e-4
    assert rel(report.figures["evaluate"].value, model.evaluate(x[:at], y[:at], batch_size=BATCH, verbose=0)) < 1e-4
