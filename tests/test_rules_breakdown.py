"""The breakdown-area rules (partial-batch, class-dilution) on hand-built Measurements: no TensorFlow.
(tests/test_breakdown_unit.py tests their thresholds in more detail.)"""

from __future__ import annotations

import pytest

from losscheck.measurements import Measurements, frozen_mapping
from losscheck.measurements.breakdown import BreakdownMeasurements
from losscheck.rules import judge_areas


def _class(k, loss, count, recall, n=1000):
    return frozen_mapping({"class": k, "output": "o", "kind": "true_class", "loss": loss, "count": count,
                           "weight": count / n, "prevalence": count / n, "recall": recall,
                           "share": loss * count / n, "contribution": loss * count / n})


def _per_class(*rows, outputs=1):
    return Measurements("breakdown", breakdown=BreakdownMeasurements(
        "per_class", total=sum(r["contribution"] for r in rows), outputs=outputs, per_class=rows))


def _per_output(*rows, n=150, batch=32):
    return Measurements("breakdown", breakdown=BreakdownMeasurements(
        "per_output", total=1.0, per_output=tuple(frozen_mapping(r) for r in rows), samples=n, batch_size=batch))


RARE_WRONG = (_class(0, 0.1, 500, 0.97), _class(1, 0.2, 450, 0.95), _class(2, 4.0, 50, 0.0))

CASES = {
    "no breakdown area": (Measurements("compare"), []),
    "rare class the model gets wrong": (_per_class(*RARE_WRONG), ["class-dilution"]),
    "healthy classes": (_per_class(_class(0, 0.05, 960, 0.99), _class(1, 0.3, 40, 0.9)), []),
    "per-output: last batch smaller": (_per_output({"output": "a", "loss": 1.0, "keras_log": 1.01}),
                                       ["partial-batch"]),
    "per-output: within rtol": (_per_output({"output": "a", "loss": 1.0, "keras_log": 1.0 + 1e-7}), []),
    "per-output: one loss (no log)": (_per_output({"output": "a", "loss": 1.0}), []),
    "per-sample": (Measurements("breakdown", breakdown=BreakdownMeasurements("per_sample", total=1.0)), []),
}


@pytest.mark.parametrize("name", list(CASES))
def test_breakdown_rules(name):
    m, codes = CASES[name]
    assert [f.code for f in judge_areas(m, ("breakdown",))] == codes


def test_subjects_and_magnitudes():
    (f,) = judge_areas(_per_class(*RARE_WRONG), ("breakdown",))
    assert f.subject == "2" and f.magnitude == pytest.approx(RARE_WRONG[2]["share"])
    (f,) = judge_areas(_per_class(*RARE_WRONG, outputs=2), ("breakdown",))
    assert f.subject == "o:2"
    (f,) = judge_areas(_per_output({"output": "a", "loss": 1.0, "keras_log": 1.01}), ("breakdown",))
    assert f.subject == "a" and f.magnitude == pytest.approx(0.01) and "the last of the 5 batches has 22 samples" \
        in f.message
