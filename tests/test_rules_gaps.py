"""The gap rules on hand-built Measurements (no TensorFlow): each code fires on a row made for it and
stays silent on the rows where its cause is absent or below --rtol; findings come in report order."""

from __future__ import annotations

import pytest

from losscheck.decomposition import decompose
from losscheck.measurements import GapMeasurements, Measurements, frozen_mapping
from losscheck.measurements.gaps import LowPrecisionFacts, SampleWeightSummary
from losscheck.rules import RULES, judge_areas, load_rules

load_rules()

HEALTHY = {"fit_epoch": 0.5, "train_mode": 0.5, "evaluate": 0.5, "manual": 0.5, "regularization": 0.0}


def gaps(changes: dict | None = None, fit: str = "fit_epoch", **facts) -> Measurements:
    """HEALTHY figures updated by `changes` (a None value removes the figure), with their decomposition."""
    figures = {**HEALTHY, **(changes or {})}
    figures = {k: v for k, v in figures.items() if v is not None}
    facts["families"] = frozen_mapping({k: tuple(v) for k, v in facts.get("families", {}).items()})
    return Measurements("compare", 1e-4, frozen_mapping(figures),
                        gaps=GapMeasurements(decomposition=decompose(figures, fit), fit_figure=fit, **facts))


SW = SampleWeightSummary(weighted=0.6, unweighted=0.5, normalized=0.55)
LOW = LowPrecisionFacts(("mixed_float16",), ("dense", "out"), ("out",))

#: (id, code, measurements, how many findings of `code` its rule gives)
TABLE = [
    ("weight-update", "weight-update", gaps({"fit_epoch": 0.7}), 1),
    ("weight-update-none", "weight-update", gaps(), 0),
    ("weight-update-below-rtol", "weight-update", gaps({"fit_epoch": 0.5 + 1e-6}), 0),
    ("dropout", "dropout", gaps({"train_mode": 0.6, "train_mode_dropout_only": 0.6}, families={"dropout": ["d"]}), 1),
    ("dropout-no-layers", "dropout", gaps({"train_mode": 0.6, "train_mode_dropout_only": 0.6}), 0),
    ("batchnorm", "batchnorm-batch-stats",
     gaps({"train_mode": 0.7, "train_mode_batchnorm_only": 0.7}, families={"batchnorm": ["bn"]}), 1),
    ("batchnorm-no-effect", "batchnorm-batch-stats",
     gaps({"train_mode_batchnorm_only": 0.5}, families={"batchnorm": ["bn"]}), 0),
    ("noise", "noise-layer", gaps({"train_mode": 0.6, "train_mode_noise_only": 0.6}, families={"noise": ["gn"]}), 1),
    ("noise-and-custom", "noise-layer",
     gaps({"train_mode": 0.7, "train_mode_noise_only": 0.6, "train_mode_custom_only": 0.6},
          families={"noise": ["gn"], "custom": ["sampler"]}), 2),
    ("noise-none", "noise-layer", gaps(), 0),
    ("interaction", "interaction",
     gaps({"train_mode": 0.9, "train_mode_dropout_only": 0.6, "train_mode_batchnorm_only": 0.6},
          families={"dropout": ["d"], "batchnorm": ["bn"]}), 1),
    ("interaction-one-family", "interaction",
     gaps({"train_mode": 0.9, "train_mode_dropout_only": 0.6}, families={"dropout": ["d"]}), 0),
    ("interaction-adds-up", "interaction",
     gaps({"train_mode": 0.7, "train_mode_dropout_only": 0.6, "train_mode_batchnorm_only": 0.6},
          families={"dropout": ["d"], "batchnorm": ["bn"]}), 0),
    ("unexplained-training-mode", "unexplained", gaps({"train_mode": 0.6}), 1),
    ("unexplained-one-family", "unexplained",
     gaps({"train_mode": 0.9, "train_mode_dropout_only": 0.6}, families={"dropout": ["d"]}), 1),
    ("unexplained-manual", "unexplained", gaps({"manual": 0.4}), 1),
    ("unexplained-both", "unexplained", gaps({"train_mode": 0.6, "manual": 0.4}), 2),
    ("unexplained-penalties-account", "unexplained", gaps({"manual": 0.4, "regularization": 0.1}), 0),
    ("unexplained-interaction-instead", "unexplained",
     gaps({"train_mode": 0.9, "train_mode_dropout_only": 0.6, "train_mode_batchnorm_only": 0.6},
          families={"dropout": ["d"], "batchnorm": ["bn"]}), 0),
    ("mixed-precision", "mixed-precision", gaps({"evaluate_float32": 0.45}, low_precision=LOW), 1),
    ("mixed-precision-same", "mixed-precision", gaps({"evaluate_float32": 0.5}, low_precision=LOW), 0),
    ("class-weight", "class-weight",
     gaps({"train_mode_class_weighted": 0.8, "fit_epoch": 0.8}, class_weight={0: 1.0, 1: 3.0}), 1),
    ("class-weight-no-effect", "class-weight",
     gaps({"train_mode_class_weighted": 0.5}, class_weight={0: 1.0, 1: 1.0}), 0),
    ("regularization", "regularization", gaps({"manual": 0.4, "regularization": 0.1}, regularized_layers=("d",)), 1),
    ("regularization-none", "regularization", gaps(), 0),
    ("sample-weight", "sample-weight", gaps(sample_weight=SW), 1),
    ("sample-weight-no-weights", "sample-weight", gaps(), 0),
    ("sample-weight-uniform", "sample-weight",
     gaps(sample_weight=SampleWeightSummary(weighted=0.5, unweighted=0.5, normalized=0.5)), 0),
]

GAP_CODES = ("weight-update", "dropout", "batchnorm-batch-stats", "noise-layer", "interaction", "unexplained",
             "mixed-precision", "class-weight", "regularization", "sample-weight")


@pytest.mark.parametrize(("code", "m", "count"), [row[1:] for row in TABLE], ids=[row[0] for row in TABLE])
def test_rule(code, m, count):
    found = RULES[code](m)
    assert [f.code for f in found] == [code] * count
    for f in found:  # a gap finding's pair differences to its magnitude exactly
        if f.between:
            assert f.magnitude == m.figures[f.between[0]] - m.figures[f.between[1]]


def test_every_gap_code_fires_in_the_table():
    assert {row[1] for row in TABLE if row[3]} == set(GAP_CODES)


@pytest.mark.parametrize("m", [gaps(), gaps(sample_weight=SampleWeightSummary(0.5, 0.5, 0.5)),
                               Measurements("compare", figures=frozen_mapping(HEALTHY))],
                         ids=["healthy", "uniform-weights", "no-gap-record"])
def test_healthy_gives_no_gap_finding(m):
    assert judge_areas(m, ("gaps",)) == ()


def test_report_order_puts_each_part_in_its_place():
    """unexplained after the training-mode gap and again after the manual gap, mixed precision between."""
    m = gaps({"fit_epoch": 0.9, "train_mode": 0.6, "evaluate_float32": 0.45, "manual": 0.3,
              "regularization": 0.1, "train_mode_class_weighted": 0.8},
             class_weight={0: 2.0}, sample_weight=SW, regularized_layers=("a", "b"))
    assert [f.code for f in judge_areas(m, ("gaps",))] == [
        "weight-update", "unexplained", "mixed-precision", "class-weight", "regularization", "sample-weight",
        "unexplained"]


def test_callback_wording_names_the_logged_figure():
    m = gaps({"fit_epoch": None, "fit_logged": 0.9, "train_mode_class_weighted": 0.8}, fit="fit_logged",
             class_weight={0: 2.0})
    found = {f.code: f for f in judge_areas(m, ("gaps",))}
    update, cw = found["weight-update"], found["class-weight"]
    assert update.between == ("fit_logged", "train_mode_class_weighted")
    assert update.message.startswith("fit logged 0.9 (fit_logged)") and "at the epoch's final weights" in update.message
    assert "at the epoch's final weights" in cw.message and "fit_epoch" not in update.message + cw.message


def test_probe_subset_weight_update_is_an_estimate():
    m = gaps({"fit_epoch": 0.9, "train_mode": 0.6, "evaluate_probe_subset": 0.45, "train_mode_dropout_only": 0.6},
             probe_samples=16, fit_steps=4, families={"dropout": ["d"]})
    update = RULES["weight-update"](m)[0]
    assert update.between is None and update.magnitude == pytest.approx((0.9 - 0.5) - (0.6 - 0.45))
    assert "estimate" in update.message and "first 16 samples" in update.message
    assert "Measured on the first 16 samples." in RULES["dropout"](m)[0].message


def test_overridden_batchnorm_note_and_advice():
    m = gaps({"train_mode": 0.7, "train_mode_batchnorm_only": 0.7}, families={"batchnorm": ["bn"]},
             overridden=frozen_mapping({"bn": "base"}), uncertainty=frozen_mapping({"train_mode_batchnorm_only": 0.01}))
    (f,) = RULES["batchnorm-batch-stats"](m)
    assert "nested model 'base'" in f.message and f.advice.startswith("To keep these BN layers")
    assert f.uncertainty == 0.01 and "std over 3 random draws" in f.message and f.subject == "bn"
