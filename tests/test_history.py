"""--history parsing (hostile files), matching rules, and the CLI's one-line errors for the
validation/history/plot options. No TensorFlow here."""

from __future__ import annotations

import json
import pickle
import sys

import pytest

from losscheck.core.errors import UsageError
from losscheck.loading.history import MAX_FILE_BYTES, read_history
from losscheck.probes.history import match
from tests.conftest import FIXTURES, run_cli

MODEL, DATA = FIXTURES / "val_lower" / "model.keras", FIXTURES / "val_lower" / "train.npz"


def _write(tmp_path, name, text):
    p = tmp_path / name
    (p.write_bytes if isinstance(text, bytes) else p.write_text)(text)
    return p


def test_json_and_csv_give_the_same_epochs_in_float32(tmp_path):
    logged = {"loss": [1.0 / 3, 0.25], "val_loss": [0.5, 0.2]}
    j = read_history(_write(tmp_path, "h.json", json.dumps(logged)))
    c = read_history(_write(tmp_path, "h.csv", "epoch,loss,val_loss\n0,0.3333333432674408,0.5\n1,0.25,0.2\n"))
    assert j.epochs == c.epochs == [1, 2]
    assert j.loss == c.loss and j.val_loss == c.val_loss
    wrapped = read_history(_write(tmp_path, "w.json", json.dumps({"history": logged, "params": {}})))
    assert wrapped.loss == j.loss
    no_val = read_history(_write(tmp_path, "n.json", json.dumps({"loss": [1, 2]})))
    assert no_val.val_loss is None


@pytest.mark.parametrize("name,content,words", [
    ("a.json", "{not json", "not valid JSON"),
    ("b.json", "[1, 2, 3]", "no 'loss' list"),
    ("c.json", json.dumps({"loss": ["x"]}), "'loss'[0] is not a number"),
    ("d.json", json.dumps({"loss": [1, 2], "val_loss": [1]}), "'val_loss' has 1"),
    ("e.json", json.dumps({"loss": 3}), "not a list"),
    ("f.json", "[" * 100000 + "]" * 100000, "not valid JSON"),
    ("g.csv", "epoch,acc\n0,1\n", "no 'loss' column"),
    ("h.csv", "epoch,loss\n0,abc\n", "row 1"),
    ("i.json", pickle.dumps({"loss": [1.0]}), "not UTF-8"),
    ("j.json", json.dumps({"loss": []}), "no epochs"),
])
def test_hostile_history_files_are_one_line_usage_errors(tmp_path, name, content, words):
    with pytest.raises(UsageError) as info:
        read_history(_write(tmp_path, name, content))
    msg = str(info.value)
    assert "\n" not in msg and f"--history {tmp_path / name}" in msg and words in msg


def test_oversized_and_missing_history(tmp_path):
    big = tmp_path / "big.json"
    with big.open("wb") as fh:  # sparse: nothing large is written
        fh.truncate(MAX_FILE_BYTES + 1)
    with pytest.raises(UsageError, match="more than"):
        read_history(big)
    with pytest.raises(UsageError, match="does not exist"):
        read_history(tmp_path / "nope.json")
    (tmp_path / "empty_tb").mkdir()
    with pytest.raises(UsageError, match="no TensorBoard event files"):
        read_history(tmp_path / "empty_tb")


def _match(h, figures, has_val, epoch=None):
    """The section and notes of what `match` finds, and the history-mismatch finding(s) it gives."""
    from types import SimpleNamespace

    from losscheck.measurements import Measurements, frozen_mapping
    from losscheck.report.measured import history_notes, history_section
    from losscheck.rules.history import history_mismatch

    facts = match(h, figures, 1e-4, has_val, epoch, 32)
    found = history_mismatch(Measurements("compare", figures=frozen_mapping(figures), history=facts))
    return SimpleNamespace(section=history_section(facts), notes=history_notes(facts)), found


def test_matching_rules(tmp_path):
    from losscheck.core.codes import Severity

    h = read_history(_write(tmp_path, "h.json", json.dumps({"loss": [1.0, 0.8, 0.7], "val_loss": [0.9, 0.6, 0.65]})))
    # the val_loss of epoch 2 (the best): a checkpoint, not the end of training
    m, found = _match(h, {"evaluate": 0.5, "evaluate_val": 0.6000001, "fit_epoch": 0.7}, True)
    assert m.section["matched_epoch"] == 2 and m.section["best_epoch"] == 2 and found == []
    assert "checkpoint" in m.notes[0]
    # the last epoch although epoch 2 was best: restore_best_weights did not restore
    m, found = _match(h, {"evaluate": 0.5, "evaluate_val": 0.65, "fit_epoch": 0.7}, True)
    assert m.section["matched_epoch"] == 3 and "restore_best_weights" in m.notes[0]
    m, (f,) = _match(h, {"evaluate": 0.5, "evaluate_val": 0.3, "fit_epoch": 0.7}, True)
    assert m.section["matched_epoch"] is None and "lower than every logged val_loss" in f.message
    assert f.severity == Severity.WARNING
    m, (f,) = _match(h, {"evaluate": 0.5, "evaluate_val": 0.602, "fit_epoch": 0.7}, True)
    assert "different batch size" in f.message
    # without validation data: the next epoch's loss identifies the weights when it matches...
    m, found = _match(h, {"evaluate": 0.5, "fit_epoch": 0.7}, False)
    assert m.section["matched_epoch"] == 2 and m.section["chosen_by"] == "fit_epoch" and found == []
    # ...else the last epoch, said to be assumed, with the best val_loss's epoch as the alternative
    m, found = _match(h, {"evaluate": 0.5, "fit_epoch": 0.75}, False)
    assert m.section["matched_epoch"] == 3 and m.section["chosen_by"] == "last" and found == []
    assert "last logged epoch's (3)" in m.notes[0] and "--epoch 2" in m.notes[0] and "batch 32" in m.notes[1]
    # --epoch chooses; with validation data a val_loss that disagrees is a warning
    m, found = _match(h, {"evaluate": 0.5, "fit_epoch": 0.75}, False, epoch=1)
    assert m.section["matched_epoch"] == 1 and m.section["chosen_by"] == "--epoch" and found == []
    m, (f,) = _match(h, {"evaluate": 0.5, "evaluate_val": 0.6, "fit_epoch": 0.7}, True, epoch=3)
    assert m.section["matched_epoch"] == 3 and f.severity == Severity.WARNING and "--epoch 3" in f.message


def _one_line_error(res, *words):
    assert res.code == 2
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in res.stderr
    for w in words:
        assert w in lines[0]


def test_cli_errors_before_loading_anything(tmp_path, monkeypatch):
    """Each bad option value is one line on stderr, before TensorFlow is even imported."""
    bad = _write(tmp_path, "bad.json", "{")
    _one_line_error(run_cli("compare", MODEL, DATA, "--history", bad), "--history", "JSON")
    _one_line_error(run_cli("compare", MODEL, DATA, "--val", tmp_path / "v.npz",
                            "--validation-split", "0.2"), "--val", "--validation-split")
    _one_line_error(run_cli("compare", MODEL, DATA, "--plot", tmp_path / "c.jpg"),
                    "--plot", ".png or .svg")
    res = run_cli("compare", MODEL, DATA, "--validation-split", "1.5")
    assert res.code == 2 and "--validation-split" in res.stderr
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # as if the extra were not installed
    _one_line_error(run_cli("compare", MODEL, DATA, "--plot", tmp_path / "c.png"),
                    "losscheck[plot]")


def test_split_index_is_keras_arithmetic():
    import math

    from losscheck.loading.validation import split_index

    for n in (7, 10, 50, 333):
        for f in (0.1, 0.2, 0.25, 0.3, 0.5, 0.9):
            at = int(math.floor(n * (1.0 - f)))
            if 0 < at < n:
                assert split_index(n, f) == at
    with pytest.raises(UsageError, match="too few"):
        split_index(1, 0.5)


def _report_with_sections():
    from losscheck.report.model import Figure, Report

    rep = Report("compare", {"model": {}, "data": {}})
    for k, v in {"fit_epoch": 0.64, "evaluate": 0.5, "evaluate_val": 0.57}.items():
        rep.figures[k] = Figure(v, k)
    rep.sections["validation"] = {
        "samples": 96, "regularization": 0.0,
        "decomposition": {"fit_epoch - evaluate_val": 0.07, "weight update": -0.003, "training-mode layers": 0.147,
                          "class weight": 0.0, "regularization": 0.0, "generalization gap": -0.074},
        "per_class_gap": [{"output": "out", "class": "1", "loss_train": 0.39, "loss_val": 0.52, "gap": -0.05},
                          {"output": "out", "class": "0", "loss_train": 0.5, "loss_val": 0.88, "gap": -0.024}]}
    rep.sections["history"] = {"path": "h.json", "format": "json", "epochs": [1, 2, 3], "loss": [1.0, 0.8, 0.6],
                               "val_loss": [0.9, 0.7, 0.57], "matched_epoch": 3, "best_epoch": 3}
    return rep


def test_sections_render_in_table_and_markdown():
    from losscheck.report.formats import render

    rep = _report_with_sections()
    table = render(rep, "table", width=80, color=False)
    assert "generalization gap" in table and "← the model's weights" in table and "the weights' epoch: 3" in table
    md = render(rep, "markdown")
    # markdown marks the lowest val_loss as the table does
    assert "| 3 | 0.6 | 0.57 | ← the model's weights; lowest val_loss |" in md and "**Training vs validation**" in md
    assert "lowest val_loss" in table
    rep.sections["history"] = {**rep.sections["history"], "matched_epoch": 2}
    md = render(rep, "markdown")
    assert "| 2 | 0.8 | 0.7 | ← the model's weights |" in md and "| 3 | 0.6 | 0.57 | lowest val_loss |" in md


def test_plot_draws_png_and_svg(tmp_path):
    pytest.importorskip("matplotlib")
    from losscheck.plot import write_plot

    rep = _report_with_sections()
    write_plot(rep, tmp_path / "c.png")
    assert (tmp_path / "c.png").read_bytes()[:4] == b"\x89PNG"
    del rep.sections["history"]  # without a history: the bars only
    write_plot(rep, tmp_path / "c.svg")
    assert "<svg" in (tmp_path / "c.svg").read_text()


def test_html_report_embeds_the_chart():
    pytest.importorskip("matplotlib")
    from losscheck.report.export import export_rich

    html = export_rich(_report_with_sections(), ".html")
    assert html.count("data:image/png;base64,") == 1 and html.index("<img") < html.index("</body>")


def test_split_dataset_views_npz_and_h5_rows(tmp_path):
    """--validation-split: the training part is rows [0, split_at), the validation part the rest,
    read lazily from an h5 file (RowView), the same rows as numpy slicing."""
    import h5py
    import numpy as np

    from losscheck.loading.data import Dataset
    from losscheck.loading.validation import RowView, split_dataset
    from losscheck.probes.validation import split_profile

    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(11, 3)).astype("float32"), rng.integers(0, 2, size=11)
    with h5py.File(tmp_path / "d.h5", "w") as f:
        f["x"], f["y"] = x, y
    f = h5py.File(tmp_path / "d.h5", "r")
    try:
        for xs, ys, streamed in ((x, y, False), (f["x"], f["y"], True)):
            ds = Dataset(tmp_path / "d", [xs], [ys], None, ["x"], ["y"], streamed=streamed)
            train, val, at = split_dataset(ds, 0.3)
            assert at == 7 and (train.n, val.n) == (7, 4)
            assert np.array_equal(np.asarray(train.slice(2, 7)[0][0]), x[2:7])
            assert np.array_equal(np.asarray(val.slice(1, 4)[1][0]), y[8:11])
            assert np.array_equal(np.asarray(val.x[0][:2]), x[7:9]) and val.x[0][-1].tolist() == x[-1].tolist()
            assert isinstance(val.x[0], RowView) == streamed
            profiles, lines = split_profile(train, val)
            shares = profiles["y"]["validation"]["classes"]
            assert abs(sum(shares.values()) - 1) < 1e-12 and "label balance" in lines[0]
    finally:
        f.close()


@pytest.mark.parametrize("env, config_dir, private", [
    ({"MPLCONFIGDIR": "set"}, False, False),   # the user's choice
    ({}, True, False),                          # the user's own matplotlib config folder
    ({}, False, True),                          # none: a temporary folder, nothing written in the home
])
def test_one_rule_for_matplotlibs_home(tmp_path, monkeypatch, env, config_dir, private):
    """Keras's import (losscheck._tf) and --plot read the same rule."""
    from losscheck.mplhome import needs_private_config

    monkeypatch.delenv("MPLCONFIGDIR", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("XDG_CONFIG_HOME", raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    if config_dir:
        (tmp_path / ".config" / "matplotlib").mkdir(parents=True)
    assert needs_private_config() is private
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    (tmp_path / "xdg" / "matplotlib").mkdir(parents=True)
    assert needs_private_config() is False
