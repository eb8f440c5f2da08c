"""compare --history on a user's run: the logged loss of the epoch the weights are from (fit_logged),
the epoch chosen (val_loss, ModelCheckpoint(save_best_only=True), --epoch, else the last), the
decomposition from fit_logged - evaluate and the headline, against Keras's own logs of the same run."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tests.conftest import rel, run_cli

pytestmark = pytest.mark.keras

N, BATCH, EPOCHS, SPLIT = 300, 32, 3, 0.2


def _cnn(keras):
    """A small CNN with BatchNorm and Dropout (keras-io MNIST convnet, shrunk)."""
    model = keras.Sequential([
        keras.Input((8, 8, 1)), keras.layers.Conv2D(4, 3, activation="relu"), keras.layers.BatchNormalization(),
        keras.layers.Flatten(), keras.layers.Dropout(0.3), keras.layers.Dense(3, activation="softmax")])
    model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Two runs of 3 epochs saved with their History JSON: with validation_split (the validation rows'
    labels follow another rule, so val_loss turns up as the model learns and a
    ModelCheckpoint(save_best_only=True) keeps an earlier epoch), and without validation data."""
    import keras

    root = tmp_path_factory.mktemp("logged")
    rng = np.random.default_rng(3)
    x = rng.normal(size=(N, 8, 8, 1)).astype("float32")
    y = (x[:, :4].mean(axis=(1, 2, 3)) > 0).astype("int64") + (x[:, 4:].mean(axis=(1, 2, 3)) > 0)
    split_at = int(N * (1 - SPLIT))
    y[split_at:] = 2 - y[split_at:]  # the validation part: the opposite rule
    np.savez(root / "data.npz", x=x, y=y)
    out = {"root": root, "x": x, "y": y, "split_at": split_at}
    keras.utils.set_random_seed(11)
    model = _cnn(keras)
    best = root / "best.keras"
    hist = model.fit(x, y, batch_size=BATCH, epochs=EPOCHS, validation_split=SPLIT, verbose=0, callbacks=[
        keras.callbacks.ModelCheckpoint(str(best), monitor="val_loss", save_best_only=True)])
    model.save(root / "split.keras")
    (root / "split.json").write_text(json.dumps(hist.history))
    out.update(split=hist.history, best=best)
    keras.utils.set_random_seed(12)
    model = _cnn(keras)
    hist = model.fit(x, y, batch_size=BATCH, epochs=EPOCHS, verbose=0)
    model.save(root / "noval.keras")
    (root / "noval.json").write_text(json.dumps(hist.history))
    out["noval"] = hist.history
    return out


def _compare(runs, model, history, *extra):
    """The JSON report and the table of one run (both written by one compare)."""
    root = runs["root"]
    js, txt = root / "r.json", root / "r.txt"
    res = run_cli("compare", model, root / "data.npz", "--history", history, *extra, "--output", js, "--output", txt)
    assert res.code in (0, 1), res.stderr
    return json.loads(js.read_text()), txt.read_text()


def _figures(rep):
    return {k: v["value"] for k, v in rep["figures"].items()}


def _check_tree(rep, top):
    """The rows under `top` add up to it, and the training-mode layer rows to theirs."""
    rows = rep["decomposition"]
    root = next(r for r in rows if r["name"] == top)
    below = [r for r in rows if r["parent"] == top]
    assert abs(sum(r["value"] for r in below) - root["value"]) < 1e-9
    layers = next(r for r in below if r["name"] == "training-mode layers")
    assert abs(sum(r["value"] for r in rows if r["parent"] == "training-mode layers") - layers["value"]) < 1e-9
    return {r["name"]: r for r in below}


def test_the_logged_loss_of_the_weights_epoch_is_explained(runs):
    import keras

    rep, table = _compare(runs, runs["root"] / "split.keras", runs["root"] / "split.json",
                          "--validation-split", str(SPLIT))
    logged, fig = runs["split"], _figures(rep)
    assert rep["history"]["matched_epoch"] == EPOCHS and rep["history"]["chosen_by"] == "val_loss"
    assert rel(fig["fit_logged"], logged["loss"][-1]) < 1e-7
    assert rel(fig["val_loss_logged"], logged["val_loss"][-1]) < 1e-7
    assert rel(fig["val_loss_logged"], fig["evaluate_val"]) < 1e-5  # the weights are that epoch's
    model = keras.models.load_model(runs["root"] / "split.keras")
    cut = runs["split_at"]
    keras_eval = model.evaluate(runs["x"][:cut], runs["y"][:cut], batch_size=BATCH, verbose=0)[0]
    assert rel(fig["evaluate"], keras_eval) < 1e-5
    below = _check_tree(rep, "fit_logged - evaluate")
    update = below["weight update"]
    assert update["between"] == ["fit_logged", "train_mode"] and "the rest" in update["label"]
    second = [r for r in rep["decomposition"] if r["parent"] == "fit_epoch - evaluate"]
    assert abs(sum(r["value"] for r in second) - (fig["fit_epoch"] - fig["evaluate"])) < 1e-9
    # the validation decomposition is about the same logged number
    dec = rep["validation"]["decomposition"]
    assert rel(dec["fit_logged - evaluate_val"], fig["fit_logged"] - fig["evaluate_val"]) < 1e-9
    # the headline: the user's numbers, the largest causes first, first in the table
    summary = rep["summary"]
    assert summary.startswith(f"Fit logged {fig['fit_logged']:.3g} and evaluate gives {fig['evaluate']:.3g}: ")
    assert "Dropout" in summary and "BatchNorm batch statistics" in summary
    assert " ".join(table.split("\n\n")[0].split()) == summary
    sizes = [abs(float(part.rsplit(" ", 1)[1])) for part in summary.split(": ", 1)[1].split(";")[0].split(", ")]
    assert sizes == sorted(sizes, reverse=True)
    # the header says what was measured
    assert f"{cut} training + {N - cut} validation of {N} samples" in " ".join(table.split())


def test_a_checkpoint_of_the_best_epoch_is_that_epoch(runs):
    logged = runs["split"]
    best = int(np.argmin(logged["val_loss"])) + 1
    assert best < EPOCHS  # the scenario: the checkpoint is not the last epoch
    rep, _ = _compare(runs, runs["best"], runs["root"] / "split.json", "--validation-split", str(SPLIT))
    fig = _figures(rep)
    assert rep["history"]["matched_epoch"] == best and rep["history"]["chosen_by"] == "val_loss"
    assert rel(fig["fit_logged"], logged["loss"][best - 1]) < 1e-7
    assert rel(fig["val_loss_logged"], fig["evaluate_val"]) < 1e-5
    assert not [f for f in rep["findings"] if f["code"] == "history-mismatch"]


def test_without_validation_data_the_last_epoch_and_epoch_option(runs):
    logged = runs["noval"]
    rep, table = _compare(runs, runs["root"] / "noval.keras", runs["root"] / "noval.json")
    fig = _figures(rep)
    assert rep["history"]["matched_epoch"] == EPOCHS and rep["history"]["chosen_by"] == "last"
    assert rel(fig["fit_logged"], logged["loss"][-1]) < 1e-7 and "val_loss_logged" not in fig
    _check_tree(rep, "fit_logged - evaluate")
    assert "nearest logged loss" not in table
    assert any("last logged epoch's (3)" in n for n in rep["notes"])
    assert any(f"every other figure uses batch {BATCH}" in n for n in rep["notes"])
    # epoch= (--epoch) chooses another epoch; the API takes the History's dict itself
    import losscheck

    report = losscheck.compare(runs["root"] / "noval.keras", runs["root"] / "data.npz", history=logged, epoch=2)
    assert report.sections["history"]["matched_epoch"] == 2 and report.sections["history"]["chosen_by"] == "--epoch"
    assert rel(report.figures["fit_logged"].value, logged["loss"][1]) < 1e-7
    assert str(report).startswith(report.summary.split(" ")[0])  # print(report): the headline first
    # an epoch the log does not have is a usage error before anything loads
    res = run_cli("compare", runs["root"] / "noval.keras", runs["root"] / "data.npz", "--history",
                  runs["root"] / "noval.json", "--epoch", "7")
    assert res.code == 2 and "logs epochs 1 to 3" in res.stderr and len(res.stderr.strip().splitlines()) == 1


def test_a_clean_report_fits_one_screen(monkeypatch):
    """No findings: at 80 columns the table is at most 40 lines, the headline first, no padding at line
    ends; the reduction trace is left out (one line) unless --trace."""
    from tests.conftest import FIXTURES

    monkeypatch.setenv("COLUMNS", "80")
    case = FIXTURES / "meaniou_ids"
    res = run_cli("compare", case / "model.keras", case / "data.npz")
    assert res.code == 0 and "No findings." in res.stdout
    lines = res.stdout.splitlines()
    assert len(lines) <= 40, res.stdout
    assert lines[0].startswith("Fit reports ") and not [line for line in lines if line != line.rstrip()]
    assert max(len(line) for line in lines) <= 80 and "Reduction trace" not in res.stdout
    traced = run_cli("compare", case / "model.keras", case / "data.npz", "--trace").stdout
    assert "Reduction trace" in traced and "--trace shows it" not in traced
