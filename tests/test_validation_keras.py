"""compare --val / --validation-split / --history / --plot against the numbers Keras reports."""

from __future__ import annotations

import importlib.util
import json

import numpy as np
import pytest

from tests.conftest import FIXTURES, ROOT, rel, run_cli

pytestmark = pytest.mark.keras
VAL = FIXTURES / "val_lower"
HAVE_MPL = importlib.util.find_spec("matplotlib") is not None  # --plot needs the losscheck[plot] extra


def _plot_args(path):
    return ["--plot", path] if HAVE_MPL else []


def test_evaluate_val_equals_keras_evaluate_and_the_causes_add_up(tmp_path):
    import keras

    plot = tmp_path / "chart.png"
    res = run_cli("compare", VAL / "model.keras", VAL / "train.npz", "--val", VAL / "val.npz",
                  "--history", VAL / "history.json", *_plot_args(plot), "--format", "json")
    assert res.code == 0, res.stderr
    rep = res.json
    fig = {k: v["value"] for k, v in rep["figures"].items()}
    with np.load(VAL / "val.npz") as f:
        xv, yv = f["x"], f["y"]
    model = keras.models.load_model(VAL / "model.keras")
    assert rel(fig["evaluate_val"], model.evaluate(xv, yv, batch_size=32, verbose=0)) < 1e-5
    val = rep["validation"]
    dec = dict(val["decomposition"])
    total = dec.pop("fit_logged - evaluate_val")  # with --history: the logged loss of the weights' epoch
    assert rel(total, fig["fit_logged"] - fig["evaluate_val"]) < 1e-9
    assert abs(sum(dec.values()) - total) < 1e-9
    assert rel(dec["generalization gap"], fig["evaluate"] - fig["evaluate_val"]) < 1e-9  # no penalties here
    # per-class contributions add up to the generalization gap
    assert abs(sum(r["gap"] for r in val["per_class_gap"]) - dec["generalization gap"]) < 1e-6
    gen = [f for f in rep["findings"] if f["code"] == "generalization-gap"]
    assert gen and gen[0]["between"] == ["evaluate", "evaluate_val"] and gen[0]["severity"] == "info"
    # val_loss < fit's loss: one sentence naming the causes, the dropout layers first
    assert fig["evaluate_val"] < fig["fit_logged"]
    assert "training-mode layers (dropout" in val["why_val_lower"]
    assert val["why_val_lower"] in rep["notes"]
    # the saved model is the end of training: the last epoch, as the history's own val_loss says
    logged = json.loads((VAL / "history.json").read_text())
    assert rep["history"]["matched_epoch"] == len(logged["val_loss"])
    assert rep["history"]["loss"] == pytest.approx(logged["loss"], rel=1e-7)
    assert rel(fig["fit_logged"], logged["loss"][-1]) < 1e-7 and rel(fig["val_loss_logged"], fig["evaluate_val"]) < 1e-5
    assert not HAVE_MPL or plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    _validate(rep)
    # the README's worked example shows this run's numbers
    readme = (ROOT / "README.md").read_text()
    for key in ("evaluate_val", "fit_logged", "fit_epoch", "evaluate"):
        assert f"{fig[key]:.6g}" in readme, key


def _validate(doc):
    """The JSON schema, and the report invariants every compare report keeps."""
    from tests.test_report_invariants import check_invariants
    from tests.test_report_schema import validate

    validate(doc)
    check_invariants(doc)


def test_validation_split_reproduces_fit(tmp_path):
    """evaluate_val is what fit(validation_split=F) logged as val_loss for the saved weights; fit_val
    is what one more epoch of fit(validation_split=F, shuffle=False) logs; the split is Keras's."""
    import keras

    rng = np.random.default_rng(3)
    x = rng.normal(size=(50, 3)).astype("float32")
    y = (x @ np.array([1.0, -1.0, 0.5], "float32") + 0.1 * rng.normal(size=50).astype("float32"))[:, None]
    y[40:] += 0.5  # the last rows (the validation part) are shifted: not a random sample
    keras.utils.set_random_seed(3)
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(4, activation="tanh"), keras.layers.Dense(1)])
    model.compile(optimizer=keras.optimizers.Adam(0.01), loss="mse")
    hist = model.fit(x, y, validation_split=0.2, batch_size=8, epochs=3, verbose=0)
    path = tmp_path / "m.keras"
    model.save(path)
    np.savez(tmp_path / "d.npz", x=x, y=y)
    (tmp_path / "h.json").write_text(json.dumps({k: [float(v) for v in vs] for k, vs in hist.history.items()}))
    res = run_cli("compare", path, tmp_path / "d.npz", "--validation-split", "0.2", "--batch-size", "8",
                  "--history", tmp_path / "h.json", *_plot_args(tmp_path / "c.svg"), "--format", "json")
    assert res.code == 0, res.stderr
    rep = res.json
    fig = {k: v["value"] for k, v in rep["figures"].items()}
    assert rel(fig["evaluate_val"], hist.history["val_loss"][-1]) < 1e-5
    assert rep["history"]["matched_epoch"] == 3
    split = rep["validation"]["split"]
    assert (split["split_at"], split["training_samples"], split["validation_samples"]) == (40, 40, 10)
    assert rep["data"]["samples"] == 40
    assert any("not a random sample" in n or "before any shuffling" in n for n in rep["notes"])
    again = keras.models.load_model(path).fit(x, y, validation_split=0.2, batch_size=8, epochs=1, shuffle=False,
                                              verbose=0)
    assert rel(fig["fit_val"], again.history["val_loss"][0]) < 1e-5
    assert rel(fig["fit_epoch"], again.history["loss"][0]) < 1e-5
    assert not HAVE_MPL or (tmp_path / "c.svg").read_text()[:200].lstrip().startswith("<?xml")
    _validate(rep)


def test_matched_epoch_for_end_and_best_checkpoint_and_three_log_formats(tmp_path):
    """One run logged three ways (History JSON, CSVLogger, TensorBoard) with a ModelCheckpoint that
    keeps the best epoch: the final model matches the last epoch, the checkpoint an earlier one, and
    all three logs give the same history section."""
    import keras

    rng = np.random.default_rng(7)
    x = rng.normal(size=(64, 4)).astype("float32")
    w = np.array([1.0, -2.0, 0.5, 1.5], "float32")
    y = (x @ w)[:, None]
    xv = rng.normal(size=(32, 4)).astype("float32")
    yv = 0.3 * (xv @ w)[:, None]  # the model overshoots these targets as it learns: val_loss turns up
    keras.utils.set_random_seed(7)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1, use_bias=False, kernel_initializer="zeros")])
    model.compile(optimizer=keras.optimizers.SGD(0.01), loss="mse")
    best = tmp_path / "best.keras"
    hist = model.fit(x, y, validation_data=(xv, yv), batch_size=16, epochs=6, verbose=0, callbacks=[
        keras.callbacks.ModelCheckpoint(str(best), monitor="val_loss", save_best_only=True),
        keras.callbacks.CSVLogger(str(tmp_path / "log.csv")),
        keras.callbacks.TensorBoard(str(tmp_path / "tb"))])
    final = tmp_path / "final.keras"
    model.save(final)
    np.savez(tmp_path / "train.npz", x=x, y=y)
    np.savez(tmp_path / "val.npz", x=xv, y=yv)
    (tmp_path / "h.json").write_text(json.dumps({k: [float(v) for v in vs] for k, vs in hist.history.items()}))
    best_epoch = int(np.argmin(hist.history["val_loss"])) + 1
    assert best_epoch < 6  # the scenario: the checkpoint is from an earlier epoch

    def history(model_path, log):
        res = run_cli("compare", model_path, tmp_path / "train.npz", "--val", tmp_path / "val.npz",
                      "--batch-size", "16", "--history", log, "--format", "json")
        assert res.code == 0, res.stderr
        return res.json

    rep = history(best, tmp_path / "h.json")
    assert rep["history"]["matched_epoch"] == best_epoch
    assert not [f for f in rep["findings"] if f["code"] == "history-mismatch"]
    rep = history(final, tmp_path / "h.json")
    section = rep["history"]
    assert section["matched_epoch"] == 6 and section["best_epoch"] == best_epoch
    assert any("not the best one" in n for n in rep["notes"])
    # the CSV and TensorBoard logs of the same run, matched against the same figures: the same section
    from losscheck.loading.history import read_history
    from losscheck.probes.history import match
    from losscheck.report.measured import history_section

    figures = {k: v["value"] for k, v in rep["figures"].items()}
    others = [history_section(match(read_history(p), figures, 1e-4, True, batch_size=16))
              for p in (tmp_path / "log.csv", tmp_path / "tb")]
    assert [o["format"] for o in others] == ["csv", "tensorboard"]
    strip = [{k: v for k, v in s.items() if k not in ("path", "format")} for s in (section, *others)]
    assert strip[0] == strip[1] == strip[2]
    # a damaged event file is a one-line usage error, not a crash
    bad = tmp_path / "bad_tb" / "train"
    bad.mkdir(parents=True)
    (bad / "events.out.tfevents.1.x").write_bytes(np.random.default_rng(0).bytes(300))
    from losscheck.core.errors import UsageError

    with pytest.raises(UsageError, match="cannot be read"):
        read_history(tmp_path / "bad_tb")
    # a checkpoint whose epoch is not in the log: history-mismatch with the likely reason
    short = tmp_path / "short.json"
    short.write_text(json.dumps({"loss": hist.history["loss"][:1], "val_loss": hist.history["val_loss"][:1]}))
    rep = history(final, short)
    assert rep["history"]["matched_epoch"] is None
    (mismatch,) = [f for f in rep["findings"] if f["code"] == "history-mismatch"]
    side = "lower" if rep["figures"]["evaluate_val"]["value"] < hist.history["val_loss"][0] else "higher"
    assert mismatch["severity"] == "warning" and f"{side} than every logged val_loss" in mismatch["message"]


@pytest.mark.slow
def test_h5_data_gives_the_same_validation_figures(tmp_path):
    """Streamed h5 data (read batch by batch, the split as lazy row views) reports what npz data does."""
    import h5py

    with np.load(VAL / "train.npz") as a, np.load(VAL / "val.npz") as b:
        x, y = np.concatenate([a["x"], b["x"]]), np.concatenate([a["y"], b["y"]])
        xv, yv = b["x"], b["y"]
    np.savez(tmp_path / "all.npz", x=x, y=y)
    with h5py.File(tmp_path / "all.h5", "w") as f:
        f["x"], f["y"] = x, y
    with h5py.File(tmp_path / "val.h5", "w") as f:
        f["x"], f["y"] = xv, yv
    model = VAL / "model.keras"

    def figures(*args):
        res = run_cli("compare", model, *args, "--format", "json")
        assert res.code == 0, res.stderr
        return {k: v["value"] for k, v in res.json["figures"].items()}

    split_npz = figures(tmp_path / "all.npz", "--validation-split", "0.25")
    split_h5 = figures(tmp_path / "all.h5", "--validation-split", "0.25")
    for key in ("evaluate", "evaluate_val", "fit_epoch", "fit_val"):
        assert rel(split_h5[key], split_npz[key]) < 1e-5, key
    val_npz = figures(VAL / "train.npz", "--val", VAL / "val.npz")
    val_h5 = figures(VAL / "train.npz", "--val", tmp_path / "val.h5")
    for key in ("evaluate_val", "fit_val"):
        assert rel(val_h5[key], val_npz[key]) < 1e-5, key
