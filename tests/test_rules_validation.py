"""The validation-area rule (generalization-gap) on hand-built Measurements: no TensorFlow."""

from __future__ import annotations

import pytest

from losscheck.measurements import Measurements, frozen_mapping
from losscheck.measurements.validation import SplitFacts, ValidationMeasurements
from losscheck.rules import judge_areas

ROWS = (frozen_mapping({"output": "y", "class": "0", "gap": 0.05}),
        frozen_mapping({"output": "y", "class": "1", "gap": -0.02}))


def _m(evaluate=1.0, evaluate_val=0.8, reg=0.0, reg_val=0.0, rows=(), split=None, parts=None):
    figures = {"evaluate": evaluate, "regularization": reg}
    if evaluate_val is not None:
        figures["evaluate_val"] = evaluate_val
    v = ValidationMeasurements(samples=50, regularization=reg_val, parts=frozen_mapping(parts or {}),
                               per_class_gap=rows, split=split)
    return Measurements("compare", figures=frozen_mapping(figures), validation=v)


SPLIT = SplitFacts(0.2, 80, 80, 20, lines=("label balance training vs validation part: class 0 50% vs 90%",))

CASES = {
    "no validation area": (Measurements("compare", figures=frozen_mapping({"evaluate": 1.0})), []),
    "no evaluate_val": (_m(evaluate_val=None), []),
    "validation easier": (_m(), ["generalization-gap"]),
    "validation harder": (_m(evaluate_val=1.3), ["generalization-gap"]),
    "same loss": (_m(evaluate_val=1.0), []),
    "within rtol": (_m(evaluate_val=1.00001), []),
    "gap only in the penalties": (_m(evaluate=1.1, evaluate_val=1.0, reg=0.1), []),
}


@pytest.mark.parametrize("name", list(CASES))
def test_validation_rules(name):
    m, codes = CASES[name]
    assert [f.code for f in judge_areas(m, ("validation",))] == codes


def test_generalization_gap_message_and_magnitude():
    (f,) = judge_areas(_m(rows=ROWS, split=SPLIT), ("validation",))
    assert f.magnitude == pytest.approx(0.2) and f.between == ("evaluate", "evaluate_val")
    assert "better on the validation data by 0.2" in f.message and "class 0 +0.05, class 1 -0.02" in f.message
    assert "not a random sample: label balance" in f.message
    # activity penalties differ between the sets: the gap is the data-loss difference, no `between`
    (f,) = judge_areas(_m(evaluate=1.2, evaluate_val=0.9, reg=0.2, reg_val=0.1,
                          parts={"generalization gap": 0.2}), ("validation",))
    assert f.magnitude == pytest.approx(0.2) and f.between is None and "worse" not in f.message
