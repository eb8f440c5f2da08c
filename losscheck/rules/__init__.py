"""Judging: each finding code is produced by exactly one rule, a pure function of `Measurements`.

    RULES: dict[str, Rule]   code -> rule, filled by the `@rule(code)` decorators of the area modules
    judge(m) -> tuple[Finding, ...]   every rule, area by area in AREAS order, rules in registration order
    judge_areas(m, areas)            the same for some areas only

A rule returns a list of findings (empty when its code does not apply); it never runs the model and
never edits a finding. A code reported in more than one place of a report (e.g. `unexplained` after
the training-mode gap and after the manual gap) has one rule in several parts: `@rule(code)` registers
the first, `@rule(code, continued=True)` a further part whose findings appear where it is registered;
RULES[code] returns every part's findings. Importing this package does not import TensorFlow.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable

from losscheck.core.codes import CODES
from losscheck.core.finding import Finding
from losscheck.measurements import Measurements

Rule = Callable[[Measurements], list[Finding]]

#: code -> the one rule that produces it
RULES: dict[str, Rule] = {}

#: area modules under losscheck.rules, in the order their findings appear in a report
AREAS = ("gaps", "legacy", "loop", "lossfn", "semantics", "data", "metrics", "validation", "history", "breakdown",
         "parity", "training")

#: (area, rule or part of a rule) in registration order
_PARTS: list[tuple[str, Rule]] = []


class _Parts:
    """A rule made of parts registered in different places: all their findings, in part order."""

    def __init__(self, first: Rule) -> None:
        self.parts = [first]
        self.__qualname__ = getattr(first, "__qualname__", repr(first))
        self.__doc__ = first.__doc__

    def __call__(self, m: Measurements) -> list[Finding]:
        return [f for part in self.parts for f in part(m)]


def _area_of(fn: Rule) -> str:
    module = getattr(fn, "__module__", "") or ""
    prefix = "losscheck.rules."
    return module[len(prefix):] if module.startswith(prefix) else module


def rule(code: str, *, continued: bool = False) -> Callable[[Rule], Rule]:
    """Register `fn` as the rule producing `code` (one rule per code; the code must be in CODES), or,
    with continued=True, as a further part of that code's rule, reported where it is registered."""

    def register(fn: Rule) -> Rule:
        if code not in CODES:
            raise ValueError(f"rule for unknown finding code {code!r}")
        if continued:
            first = RULES.get(code)
            if first is None:
                raise ValueError(f"finding code {code!r} has no rule to continue")
            combined = first if isinstance(first, _Parts) else _Parts(first)
            combined.parts.append(fn)
            RULES[code] = combined
        else:
            if code in RULES:
                raise ValueError(f"finding code {code!r} already has a rule ({RULES[code].__qualname__})")
            RULES[code] = fn
        _PARTS.append((_area_of(fn), fn))
        return fn

    return register


def load_rules() -> dict[str, Rule]:
    """Import every area module (which registers its rules) and return RULES."""
    for area in AREAS:
        importlib.import_module(f"losscheck.rules.{area}")
    return RULES


def judge_areas(m: Measurements, areas: Iterable[str]) -> tuple[Finding, ...]:
    """The findings of the rules (and parts of rules) of `areas`, area by area in that order, rules in
    registration order; an area module that defines `arrange(m, findings)` puts its own findings in
    report order."""
    load_rules()
    found: list[Finding] = []
    for area in areas:
        module = importlib.import_module(f"losscheck.rules.{area}")
        mine: list[Finding] = []
        for part_area, fn in _PARTS:
            if part_area == area:
                mine += fn(m)
        arrange = getattr(module, "arrange", None)
        found += arrange(m, mine) if arrange is not None else mine
    return tuple(found)


def judge(m: Measurements) -> tuple[Finding, ...]:
    """All findings for `m`: every registered rule, in AREAS order, then registration order."""
    return judge_areas(m, AREAS)
