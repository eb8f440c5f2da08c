"""The natural-numpy chain rules and the legacy-keras rule on hand-built Measurements (no TensorFlow):
each code fires on a row made for it and stays silent where its link of the chain does not move the
loss, the link is absent, or manual is missing."""

from __future__ import annotations

import math

import pytest

from losscheck.measurements import Measurements, ModelFacts, SemanticMeasurements, frozen_mapping
from losscheck.measurements.semantics import OutputChainFacts
from losscheck.rules import RULES, judge_areas, load_rules

load_rules()

CHAIN = {"keras": 2.0, "no_weights": 2.0, "no_masks": 2.0, "probabilities": 2.0, "unclipped": 2.0,
         "float64_outputs": 2.0}


def chain(changes: dict | None = None, manual: bool = True, **facts) -> Measurements:
    """One output "out" with `facts`, the chain CHAIN updated by `changes`, evaluate 2.0."""
    figures = {"evaluate": 2.0, **({"manual": 2.0} if manual else {})}
    sem = SemanticMeasurements(frozen_mapping({**CHAIN, **(changes or {})}),
                               frozen_mapping({"out": OutputChainFacts(**facts)}))
    return Measurements("compare", 1e-4, frozen_mapping(figures), semantics=sem)


MASKED = {"masked": True, "masked_fraction": (1.0, 4.0)}
CLIPPED = {"clipped": True, "clip_active": 3}

#: (id, code, measurements, how many findings of `code` its rule gives)
TABLE = [
    ("mask", "mask", chain({"no_masks": 1.5}, **MASKED), 1),
    ("mask-no-mask", "mask", chain({"no_masks": 1.5}), 0),
    ("mask-no-effect", "mask", chain(**MASKED), 0),
    ("mask-no-manual", "mask", chain({"no_masks": 1.5}, manual=False, **MASKED), 0),
    ("logits-shortcut", "logits-shortcut", chain({"probabilities": 1.0}, logits_used=True), 1),
    ("logits-shortcut-not-used", "logits-shortcut", chain({"probabilities": 1.0}), 0),
    ("logits-shortcut-below-rtol", "logits-shortcut", chain({"probabilities": 2.0 + 1e-5}, logits_used=True), 0),
    ("clipping", "probability-clipping", chain({"unclipped": 2.5}, **CLIPPED), 1),
    ("clipping-infinite", "probability-clipping", chain({"unclipped": math.inf}, **CLIPPED), 1),
    ("clipping-nothing-outside", "probability-clipping", chain({"unclipped": 2.5}, clipped=True), 0),
    ("clipping-not-computed", "probability-clipping", chain({"unclipped": None}, **CLIPPED), 0),
    ("mixed-precision", "mixed-precision", chain({"float64_outputs": 2.5}, low_precision="float16"), 1),
    ("mixed-precision-float32", "mixed-precision", chain({"float64_outputs": 2.5}), 0),
    ("mixed-precision-same", "mixed-precision", chain(low_precision="bfloat16"), 0),
]


@pytest.mark.parametrize(("code", "m", "count"), [row[1:] for row in TABLE], ids=[row[0] for row in TABLE])
def test_rule(code, m, count):
    found = RULES[code](m)
    assert [f.code for f in found] == [code] * count
    assert all(f.between is None for f in found)  # the chain's figures are not report figures


def test_every_semantics_code_fires_in_the_table():
    assert {row[1] for row in TABLE if row[3]} == {"mask", "logits-shortcut", "probability-clipping",
                                                   "mixed-precision"}


def test_findings_in_chain_order_and_numbers():
    m = chain({"no_masks": 1.5, "probabilities": 1.0, "unclipped": 1.2, "keras": 2.0, "float64_outputs": 2.5},
              **MASKED, logits_used=True, **CLIPPED, low_precision="float16")
    found = judge_areas(m, ("semantics",))
    assert [f.code for f in found] == ["mask", "logits-shortcut", "probability-clipping", "mixed-precision"]
    assert [f.magnitude for f in found] == pytest.approx([0.5, 0.5, 0.3, -0.5])
    assert "of the output (25.0% of them)" in found[0].message and found[0].subject == "out"
    assert "infinite" in RULES["probability-clipping"](chain({"unclipped": math.inf}, **CLIPPED))[0].message


def test_mixed_precision_is_one_rule_in_two_places():
    """The float32-copy part comes with the gap findings, the output-dtype part with the chain."""
    m = Measurements("compare", 1e-4, frozen_mapping({"evaluate": 2.0, "manual": 2.0, "evaluate_float32": 1.9}),
                     semantics=chain({"float64_outputs": 2.5}, low_precision="float16").semantics)
    both = RULES["mixed-precision"](m)
    assert [f.between for f in both] == [("evaluate", "evaluate_float32"), None]
    assert [f.code for f in judge_areas(m, ("gaps",))] == ["mixed-precision"]
    assert [f.code for f in judge_areas(m, ("semantics",))] == ["mixed-precision"]


def test_healthy_chain_gives_nothing():
    assert judge_areas(chain(**MASKED, logits_used=True, **CLIPPED, low_precision="float16"), ("semantics",)) == ()
    assert judge_areas(Measurements("compare", figures=frozen_mapping({"evaluate": 2.0})), ("semantics",)) == ()


def test_section_shows_non_finite_as_none():
    sem = chain({"unclipped": math.inf, "probabilities": None}).semantics
    assert sem is not None
    assert sem.section() == {**CHAIN, "unclipped": None, "probabilities": None}


LEGACY = ModelFacts(("out",), legacy=True, saved_by="tf.keras 2.15.0")


@pytest.mark.parametrize(("facts", "count", "text"), [
    (LEGACY, 1, "None of the known Keras 2/3 loss differences applies"),
    (ModelFacts(("out",), legacy=True, saved_by="tf.keras 2.15.0", keras2_differences=(("clause a", False),)),
     1, "Keras 2 reported the same evaluate figure; Keras 2 semantics that differ for this model elsewhere: (1) "
        "clause a."),
    (ModelFacts(("out",), legacy=True, saved_by="tf.keras 2.15.0",
                keras2_differences=(("clause a", False), ("clause b", True))),
     1, "differ for this model: (1) clause a; (2) clause b."),
    (ModelFacts(("out",), legacy=False, saved_by="keras 3.15.0"), 0, ""),
    (None, 0, ""),
], ids=["legacy", "legacy-same-evaluate", "legacy-differs", "keras3", "no-model-facts"])
def test_legacy_keras(facts, count, text):
    found = RULES["legacy-keras"](Measurements("inspect", model=facts))
    assert [f.code for f in found] == ["legacy-keras"] * count
    if count:
        assert found[0].message.startswith("The file was saved by tf.keras 2.15.0;") and text in found[0].message
