"""Judging: each finding code is produced by exactly one rule, a pure function of `Measurements`.

    RULES: dict[str, Rule]   code -> rule, filled by the `@rule(code)` decorators of the area modules
    judge(m) -> tuple[Finding, ...]   every rule, area by area in AREAS order, rules in registration order
    judge_areas(m, areas)            the same for some areas only

A rule returns a list of findings (empty when its code does not apply); it never runs the model and
never edits a finding. Importing this package does not import TensorFlow.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable

from losscheck.findings import CODES, Finding
from losscheck.measurements import Measurements

Rule = Callable[[Measurements], list[Finding]]

#: code -> the one rule that produces it
RULES: dict[str, Rule] = {}

#: area modules under losscheck.rules, in the order their findings appear in a report
AREAS = ("gaps", "legacy", "lossfn", "semantics", "data", "metrics", "validation", "history", "breakdown")


def rule(code: str) -> Callable[[Rule], Rule]:
    """Register `fn` as the rule producing `code` (one rule per code; the code must be in CODES)."""

    def register(fn: Rule) -> Rule:
        if code not in CODES:
            raise ValueError(f"rule for unknown finding code {code!r}")
        if code in RULES:
            raise ValueError(f"finding code {code!r} already has a rule ({RULES[code].__qualname__})")
        RULES[code] = fn
        return fn

    return register


def load_rules() -> dict[str, Rule]:
    """Import every area module (which registers its rules) and return RULES."""
    for area in AREAS:
        importlib.import_module(f"losscheck.rules.{area}")
    return RULES


def judge(m: Measurements) -> tuple[Finding, ...]:
    """All findings for `m`: every registered rule, in AREAS order, then registration order."""
    return judge_areas(m, AREAS)


def judge_areas(m: Measurements, areas: tuple[str, ...]) -> tuple[Finding, ...]:
    """The findings of the rules of `areas`, area by area in that order, rules in registration order;
    an area module that defines `arrange(m, findings)` puts its own findings in report order."""
    load_rules()
    found: list[Finding] = []
    for area in areas:
        module = importlib.import_module(f"losscheck.rules.{area}")
        mine: list[Finding] = []
        for fn in RULES.values():
            if fn.__module__ == module.__name__:
                mine += fn(m)
        arrange = getattr(module, "arrange", None)
        found += arrange(m, mine) if arrange is not None else mine
    return tuple(found)
