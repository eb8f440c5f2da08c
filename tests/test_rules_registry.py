"""Every finding code has exactly one rule, and findings are frozen once made."""

from __future__ import annotations

import dataclasses

import pytest

from losscheck.core.codes import CODES
from losscheck.core.finding import Finding
from losscheck.measurements import Measurements
from losscheck.rules import AREAS, RULES, judge, load_rules, rule


def test_every_code_has_one_rule_and_every_rule_a_code():
    assert set(load_rules()) == set(CODES)


def test_every_rule_lives_in_an_area_module():
    load_rules()
    parts = [p for fn in RULES.values() for p in getattr(fn, "parts", [fn])]  # a rule in several parts
    modules = {fn.__module__ for fn in parts}
    assert modules <= {f"losscheck.rules.{area}" for area in AREAS}


def test_a_second_rule_for_a_code_is_refused():
    load_rules()
    with pytest.raises(ValueError, match="already has a rule"):
        rule("dropout")(lambda m: [])
    with pytest.raises(ValueError, match="unknown finding code"):
        rule("no-such-code")(lambda m: [])


def test_nothing_measured_finds_nothing():
    assert judge(Measurements("compare")) == ()


def test_findings_are_frozen():
    f = Finding("dropout", "text", magnitude=1.0)
    assert f.severity is not None
    with pytest.raises(dataclasses.FrozenInstanceError):
        f.message = "edited"  # type: ignore[misc]
