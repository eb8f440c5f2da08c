"""The gap decomposition and the findings built on it, on hand-set figures (no TensorFlow): rows add up
to their parent, `between` pairs difference to the magnitude, the remainder rows have no pair."""

from __future__ import annotations

import pytest

from losscheck.decomposition import decompose, finite_rows
from losscheck.measurements import GapMeasurements, Measurements, frozen_mapping
from losscheck.report.assemble import frozen_batchnorm_note
from losscheck.rules import judge_areas

FULL = {"fit_epoch": 1.24, "train_mode_class_weighted": 1.34, "train_mode": 0.78, "train_mode_dropout_only": 0.70,
        "train_mode_batchnorm_only": 0.75, "evaluate": 0.59, "manual": 0.58, "regularization": 0.011}


def _measure(figures: dict, **facts) -> Measurements:
    """Measurements of the gaps area on hand-set figures (families as lists, like LayerFamilies.names)."""
    facts["families"] = frozen_mapping({k: tuple(v) for k, v in facts.get("families", {}).items()})
    return Measurements("compare", 1e-4, frozen_mapping(figures),
                        gaps=GapMeasurements(decomposition=decompose(figures), **facts))


def attribute(m: Measurements) -> tuple:
    return judge_areas(m, ("gaps",))


def _check(ev: Measurements) -> list:
    rows = decompose(ev.figures)
    for row in rows:
        children = [r for r in rows if r["parent"] == row["name"]]
        if children:
            assert sum(r["value"] for r in children) == pytest.approx(row["value"], rel=1e-12, abs=1e-15)
        if row["between"]:
            a, b = row["between"]
            assert row["value"] == ev.figures[a] - ev.figures[b]
    for f in attribute(ev):
        if f.between and f.magnitude_kind == "gap":
            assert f.magnitude == ev.figures[f.between[0]] - ev.figures[f.between[1]], f
    return rows


def test_class_weight_chain():
    ev = _measure(dict(FULL), class_weight={0: 1.0, 1: 3.0}, families={"dropout": ["d"], "batchnorm": ["bn"]},
                  fit_steps=4)
    rows = {r["name"]: r for r in _check(ev)}
    assert rows["weight update"]["between"] == ("fit_epoch", "train_mode_class_weighted")
    assert rows["class weight"]["between"] == ("train_mode_class_weighted", "train_mode")
    assert rows["training-mode layers"]["between"] == ("train_mode", "evaluate")
    assert rows["interaction"]["value"] == pytest.approx(0.78 - 0.59 - (0.70 - 0.59) - (0.75 - 0.59))
    assert rows["residual"]["value"] == pytest.approx(0.59 - 0.58 - 0.011)
    found = {f.code: f for f in attribute(ev)}
    assert found["class-weight"].between == ("train_mode_class_weighted", "train_mode")
    assert found["batchnorm-batch-stats"].between == ("train_mode_batchnorm_only", "evaluate")
    assert found["weight-update"].between == ("fit_epoch", "train_mode_class_weighted")
    assert "1.24" in found["weight-update"].message and "1.34" in found["weight-update"].message


def test_probe_subset_weight_update_is_the_rest():
    figures = {k: v for k, v in FULL.items() if k != "train_mode_class_weighted"}
    figures["evaluate_probe_subset"] = 0.54
    ev = _measure(figures, probe_samples=16, families={"dropout": ["d"], "batchnorm": ["bn"]}, fit_steps=4)
    rows = {r["name"]: r for r in _check(ev)}
    assert rows["training-mode layers"]["between"] == ("train_mode", "evaluate_probe_subset")
    assert rows["weight update"]["between"] is None
    assert rows["weight update"]["value"] == pytest.approx((1.24 - 0.59) - (0.78 - 0.54))
    update = next(f for f in attribute(ev) if f.code == "weight-update")
    assert update.between is None and update.magnitude == rows["weight update"]["value"]
    for number in ("+0.65", "0.78 - 0.54", "+0.24", "+0.41"):  # the message's numbers subtract to it
        assert number in update.message, update.message


def test_without_fit_or_families():
    ev = _measure({"train_mode": 0.7, "evaluate": 0.6})
    rows = _check(ev)
    assert [r["name"] for r in rows] == ["training-mode layers"] and rows[0]["depth"] == 0
    (f,) = attribute(ev)
    assert f.code == "unexplained" and f.between == ("train_mode", "evaluate")
    assert f.magnitude == pytest.approx(0.1)


def test_non_finite_group_is_left_out_whole():
    ev = _measure({"fit_epoch": float("nan"), "train_mode": 0.7, "evaluate": 0.6, "manual": 0.6,
                   "regularization": 0.0})
    names = [r["name"] for r in finite_rows(decompose(ev.figures))]
    assert names == ["evaluate - manual", "regularization", "residual"]


def test_frozen_batchnorm_note():
    note = frozen_batchnorm_note(["b_bn"], legacy=False)
    assert "b_bn" in note and "inference mode" in note and "no cause" in note and "tf.keras" not in note
    legacy = frozen_batchnorm_note(["b_bn"], legacy=True)
    assert "tf.keras 2.x" in legacy and "tf.compat.v1" in legacy


def test_figures_table_and_gaps_table_show_the_same_training_mode_gap():
    """On a --probe-samples subset the figures table compares the subset figures with
    evaluate_probe_subset, the same difference the gaps table shows (and names)."""
    from losscheck.core.formatting import sig
    from losscheck.report.model import Figure, Report
    from losscheck.report.text import figure_rows

    figures = {"fit_epoch": 0.72, "train_mode": 0.69, "train_mode_batchnorm_only": 0.69,
               "evaluate_probe_subset": 0.54, "evaluate": 0.59, "manual": 0.59, "regularization": 0.0}
    ev = _measure(dict(figures), probe_samples=16, families={"batchnorm": ["bn"]}, fit_steps=4)
    report = Report("compare", {"model": {}})
    subset = ("train_mode", "train_mode_batchnorm_only", "evaluate_probe_subset")
    report.figures = {k: Figure(v, k, {"samples": 16} if k in subset else {}) for k, v in figures.items()}
    shown = {name: (diff, desc) for name, _, diff, desc in figure_rows(report)}
    rows = {r["name"]: r for r in decompose(ev.figures)}
    assert shown["train_mode"][0] == sig(rows["training-mode layers"]["value"], signed=True)
    assert shown["train_mode_batchnorm_only"][0] == sig(rows["batchnorm"]["value"], signed=True)
    assert "vs evaluate_probe_subset" in shown["train_mode"][1]
    assert "train_mode - evaluate_probe_subset" in rows["training-mode layers"]["label"]
    assert shown["evaluate_probe_subset"][0] == sig(0.54 - 0.59, signed=True)  # vs the full evaluate


def test_weight_normalized_keeps_a_loss_that_returns_one_scalar_per_batch():
    """A loss reduced to one value per batch has no elements to weight: the value stands (masked
    sequences with per-sample weights used to fail to broadcast here)."""
    import numpy as np

    from losscheck.reference.weighting import weight_normalized

    w = np.array([1.0, 2.0, 0.5, 1.0, 3.0])
    mask = np.ones((5, 5))
    assert weight_normalized(None, None, None, w, mask, None, np.float32(0.75)) == 0.75
    values = np.array([1.0, 2.0, 3.0, 4.0, 5.0])
    assert weight_normalized(None, None, None, w, None, None, values) == float(np.sum(values * w) / np.sum(w))
