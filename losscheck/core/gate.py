"""The exit-code policy: --fail-on, --select, --ignore and --max-gap as one frozen value.

Only the command line (and the Python API's Report, its equivalent) holds a Gate; the commands build
their Report without one. Pure Python: no TensorFlow.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from losscheck.core.codes import CODES, Severity
from losscheck.core.errors import UsageError
from losscheck.core.figures import GATED_FIGURES
from losscheck.core.significance import relative_gap

if TYPE_CHECKING:
    from losscheck.core.finding import Finding
    from losscheck.report.model import Report

#: --fail-on's choices, lowest first; "never" fails on no finding
FAIL_ON = ("info", "warning", "error", "never")


def codes(value: str | Iterable[str] | None, what: str) -> frozenset[str]:
    """--select / --ignore: comma-separated finding codes (or, from the Python API, any iterable of
    them), each one a registered code; `what` names the option in the error."""
    if not value:
        return frozenset()
    items = value.split(",") if isinstance(value, str) else [str(c) for c in value]
    found = frozenset(c.strip() for c in items if c.strip())
    unknown = sorted(found - set(CODES))
    if unknown:
        raise UsageError(f"{what}: unknown finding code(s) {', '.join(unknown)}; known: {', '.join(CODES)}")
    return found


@dataclass(frozen=True)
class Gate:
    """fail_on: the lowest severity that fails ("never": none); select: keep only these codes (all
    when empty); ignore: drop these codes; max_gap: the largest relative difference of a GATED_FIGURES
    figure from evaluate that passes (None: not bounded)."""

    fail_on: str = "error"
    select: frozenset[str] = field(default_factory=frozenset)
    ignore: frozenset[str] = field(default_factory=frozenset)
    max_gap: float | None = None

    def __post_init__(self) -> None:
        if self.fail_on not in FAIL_ON:
            raise ValueError(f"fail_on must be one of {', '.join(FAIL_ON)}, not {self.fail_on!r}")

    def kept(self, findings: Iterable[Finding]) -> list[Finding]:
        """--select (keep only these codes, when given), then --ignore: the one filter every report passes."""
        return [f for f in findings if (not self.select or f.code in self.select) and f.code not in self.ignore]

    def failing(self, findings: Iterable[Finding]) -> list[Finding]:
        """The kept findings at or above fail_on (none with "never")."""
        if self.fail_on == "never":
            return []
        threshold = Severity.parse(self.fail_on)
        return [f for f in self.kept(findings) if f.severity is not None and f.severity >= threshold]

    def breaches(self, figures: Mapping[str, Any]) -> list[tuple[str, float]]:
        """(figure, relative gap) of each GATED_FIGURES figure farther than max_gap from evaluate;
        empty without max_gap or an evaluate figure. A non-finite gap breaches any bound."""
        if self.max_gap is None or "evaluate" not in figures:
            return []
        ev = figures["evaluate"].value
        out: list[tuple[str, float]] = []
        for name in GATED_FIGURES:
            if name in figures:
                gap = relative_gap(figures[name].value, ev)
                if not gap <= self.max_gap:  # NaN compares False with everything
                    out.append((name, gap))
        return out

    def exit_code(self, findings: Iterable[Finding], figures: Mapping[str, Any]) -> int:
        """1 when a kept finding is at or above fail_on or a figure breaches max_gap; 0 otherwise."""
        return 1 if self.breaches(figures) or self.failing(findings) else 0

    def apply(self, report: Report) -> Report:
        """A copy of `report` with only the kept findings, judged by this gate (the report is not changed)."""
        return replace(report, findings=self.kept(report.findings), gate=self)
