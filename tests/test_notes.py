"""Notes carry a topic: each command's report shows the topics that concern it (breakdown never fits
and the callback is the fit, so both leave out the notes on the fit probe). No TensorFlow."""

from __future__ import annotations

import json

import pytest

from losscheck.measurements import BreakdownMeasurements, Measurements, frozen_mapping
from losscheck.notes import FIT, GENERAL, Note, topic_of, without
from losscheck.report.assemble import breakdown_report

FIT_NOTE = Note("the saved optimizer could not be rebuilt (ValueError: x), so fit_epoch is not measured", FIT)


def test_a_note_is_its_text_with_a_topic():
    assert FIT_NOTE == FIT_NOTE.text and FIT_NOTE.topic == FIT and topic_of(FIT_NOTE) == FIT
    assert topic_of("a plain string") == GENERAL
    assert json.dumps([FIT_NOTE]) == json.dumps([FIT_NOTE.text])
    with pytest.raises(ValueError, match="unknown note topic"):
        Note("x", "weather")


def test_without_keeps_order_and_gives_plain_strings():
    notes = ["a", FIT_NOTE, Note("b", GENERAL)]
    kept = without(notes, FIT)
    assert kept == ["a", "b"] and all(type(n) is str for n in kept)
    assert without(notes) == ["a", FIT_NOTE.text, "b"]


def test_breakdown_leaves_out_the_fit_probe_notes():
    m = Measurements("breakdown", figures=frozen_mapping({"evaluate": 1.0, "manual": 1.0, "regularization": 0.0}),
                     breakdown=BreakdownMeasurements(mode="per_sample", total=1.0, identity="mean"),
                     notes=("loading note", FIT_NOTE, "split note"))
    report = breakdown_report({}, m, [])
    assert report.sections["notes"] == ["loading note", "split note"]
    only_fit = Measurements("breakdown", breakdown=BreakdownMeasurements(mode="per_sample"), notes=(FIT_NOTE,))
    assert "notes" not in breakdown_report({}, only_fit, []).sections
