"""The history-area rule (history-mismatch) on hand-built Measurements: no TensorFlow."""

from __future__ import annotations

import dataclasses

import pytest

from losscheck.core.codes import Severity
from losscheck.measurements import Measurements, frozen_mapping
from losscheck.measurements.history import FIT_COMPARED, VAL_COMPARED, HistoryMeasurements
from losscheck.rules import judge_areas

H = HistoryMeasurements("h.json", "json", (1, 2, 3), (1.0, 0.8, 0.7), (0.9, 0.6, 0.65), VAL_COMPARED, None, 2)


def _m(h, evaluate_val=0.3, evaluate=0.5):
    return Measurements("compare", figures=frozen_mapping({"evaluate": evaluate, "evaluate_val": evaluate_val}),
                        history=h)


CASES = {
    "no history area": (Measurements("compare"), [], None),
    "matched on val_loss": (_m(dataclasses.replace(H, matched_epoch=2, matched_index=1, chosen_by="val_loss"), 0.6), [],
                            None),
    "below every val_loss": (_m(H, 0.3), ["history-mismatch"], "lower than every logged val_loss"),
    "above every val_loss": (_m(H, 1.5), ["history-mismatch"], "higher than every logged val_loss"),
    "close to one epoch": (_m(H, 0.602), ["history-mismatch"], "different batch size"),
    "between logged values": (_m(H, 0.75), ["history-mismatch"], "lies between logged values"),
    "no val_loss logged: the epoch is chosen without it": (
        _m(dataclasses.replace(H, val_loss=None, best_epoch=None, compared=FIT_COMPARED, matched_epoch=3,
                               matched_index=2, chosen_by="last")), [], None),
    "matched on the next epoch's loss": (_m(dataclasses.replace(H, compared=FIT_COMPARED, matched_epoch=2,
                                                                matched_index=1, chosen_by="fit_epoch")), [], None),
    "no validation data: the last epoch": (_m(dataclasses.replace(H, compared=FIT_COMPARED, matched_epoch=3,
                                                                  matched_index=2, chosen_by="last")), [], None),
    "--epoch whose val_loss matches": (_m(dataclasses.replace(H, matched_epoch=2, matched_index=1,
                                                              chosen_by="--epoch"), 0.6), [], None),
    "--epoch whose val_loss does not": (_m(dataclasses.replace(H, matched_epoch=3, matched_index=2,
                                                               chosen_by="--epoch"), 0.6), ["history-mismatch"],
                                        "--epoch 3: its logged val_loss (0.65) is not evaluate_val (0.6"),
}


@pytest.mark.parametrize("name", list(CASES))
def test_history_rules(name):
    m, codes, text = CASES[name]
    found = judge_areas(m, ("history",))
    assert [f.code for f in found] == codes
    if text:
        assert text in found[0].message


def test_mismatch_severity():
    (f,) = judge_areas(_m(H, 0.3), ("history",))
    assert f.severity == Severity.WARNING and f.magnitude is None
    (f,) = judge_areas(_m(dataclasses.replace(H, matched_epoch=1, matched_index=0, chosen_by="--epoch"), 0.6),
                       ("history",))
    assert f.severity == Severity.WARNING and "the nearest is epoch 2's" in f.message
