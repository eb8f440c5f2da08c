"""The report model: Figure, Report (with its exit code under a Gate) and ExitCode.

Pure Python: no TensorFlow, no printing. The `to_*` views import their renderer when called; the
renderers import this module only for type checking, so the two never form a cycle.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from losscheck.core.figures import FIGURE_ORDER
from losscheck.core.finding import Finding
from losscheck.core.gate import Gate


@dataclass
class Figure:
    """One loss figure: its value and what it is."""

    value: float
    description: str
    extra: dict[str, Any] = field(default_factory=dict)
    #: the few words the table and markdown show (the description when empty); not in JSON
    brief: str = ""

    def to_json(self) -> dict[str, Any]:
        """The figure as the report's JSON object: value, description and any extra keys."""
        return {"value": self.value, "description": self.description, **self.extra}


@dataclass
class Report:
    """Everything a renderer needs. `header` holds model/data/version info; `sections` holds
    command-specific extras (breakdown rows, reduction traces, decomposition)."""

    command: str
    header: dict[str, Any]
    figures: dict[str, Figure] = field(default_factory=dict)
    findings: list[Finding] = field(default_factory=list)
    sections: dict[str, Any] = field(default_factory=dict)
    #: the exit-code policy the CLI or the Python API judged this report by (Gate.apply sets it)
    gate: Gate = field(default_factory=Gate)
    #: the table and markdown show the reduction trace (--trace); JSON always holds it
    trace: bool = False

    @property
    def fail_on(self) -> str:
        """The gate's --fail-on severity (error, warning, info or never)."""
        return self.gate.fail_on

    @property
    def max_gap(self) -> float | None:
        """The gate's --max-gap bound on relative gaps, or None."""
        return self.gate.max_gap

    @property
    def summary(self) -> str:
        """compare's and the callback's one-sentence answer in the report's numbers (report/headline.py);
        '' for the other commands."""
        from losscheck.report.headline import headline

        return headline(self) if self.command in ("compare", "callback") else ""

    def ordered_figures(self) -> list[tuple[str, Figure]]:
        """(name, figure) pairs in FIGURE_ORDER, then any other figures in insertion order."""
        known = [(k, self.figures[k]) for k in FIGURE_ORDER if k in self.figures]
        rest = [(k, v) for k, v in self.figures.items() if k not in FIGURE_ORDER]
        return known + rest

    def gap_breaches(self) -> list[tuple[str, float]]:
        """--max-gap: the figures (fit_epoch, train_mode) whose relative difference from evaluate is
        above the gate's bound, with that difference (see Gate.breaches)."""
        return self.gate.breaches(self.figures)

    def failing_findings(self) -> list[Finding]:
        """The findings at or above the gate's --fail-on (none with `never`)."""
        return self.gate.failing(self.findings)

    @property
    def exit_code(self) -> ExitCode:
        """0: nothing at or above fail_on and no max_gap breach; 1 otherwise. (2 is the CLI's, for
        errors: a Report never carries it.) An int that may also be called: `report.exit_code` and
        `report.exit_code()` are the same number, under the report's own gate;
        `report.exit_code(gate)` is the code under `gate` (pure: findings, figures and gate only)."""
        return ExitCode(self.gate.exit_code(self.findings, self.figures), self)

    # -- the Python API's views ------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """Exactly the `--format json` report, as a dict."""
        from losscheck.report.json import report_dict

        return report_dict(self)

    def to_json(self) -> str:
        """Exactly the `--format json` report, as a string."""
        from losscheck.report.json import render_json

        return render_json(self)

    def to_markdown(self, trace: bool | None = None) -> str:
        """Exactly the `--format markdown` report (with the reduction trace when `trace`, as --trace)."""
        from losscheck.report.formats import render

        return render(self._traced(trace), "markdown")

    def to_table(self, width: int = 100, color: bool = False, trace: bool | None = None) -> str:
        """The `--format table` report as plain text (ANSI colours when `color`), `width` columns wide
        (with the reduction trace when `trace`, as --trace)."""
        from losscheck.report.formats import render

        return render(self._traced(trace), "table", width=width, color=color)

    def _traced(self, trace: bool | None) -> Report:
        import dataclasses

        return self if trace is None else dataclasses.replace(self, trace=trace)

    def __str__(self) -> str:
        """The table, as `print(report)` shows it: `to_table()`, 100 columns, no colour."""
        return self.to_table()

    def __rich__(self) -> Any:
        from rich.console import Group

        from losscheck.report import for_display
        from losscheck.report.table import build_renderables

        return Group(*build_renderables(for_display(self)))

    def _repr_html_(self) -> str:
        from losscheck.report.html import render_html

        return render_html(self)

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, str]:
        """What Jupyter shows: the HTML report, the markdown report and the table as plain text
        (only the types in `include`, none in `exclude`, when given)."""
        renderers = {"text/html": self._repr_html_, "text/markdown": self.to_markdown, "text/plain": self.to_table}
        return {mime: render() for mime, render in renderers.items()
                if (not include or mime in include) and (not exclude or mime not in exclude)}


class ExitCode(int):
    """An exit code (0 or 1) that is also callable: with no argument it returns itself, with a Gate
    the code its report gets under that gate."""

    _report: Report | None

    def __new__(cls, value: int, report: Report | None = None) -> ExitCode:
        out = super().__new__(cls, value)
        out._report = report
        return out

    def __call__(self, gate: Gate | None = None) -> int:
        if gate is None or self._report is None:
            return int(self)
        return gate.exit_code(self._report.findings, self._report.figures)
