"""--format table: rich tables rendered to a string (fixed width, optional colour).

Nothing is ever cut or split: every table is a FitTable (losscheck/report/layout.py), which wraps
cells only at spaces and, when its columns cannot fit, splits or stacks them; tests render at 80,
100 and 160 columns (tests/test_report_render.py).
"""

from __future__ import annotations

import io
import re
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from losscheck.core.codes import Severity
from losscheck.core.finding import Finding
from losscheck.core.formatting import sig
from losscheck.report.layout import Col, FitTable
from losscheck.report.text import (
    TRACE_LEFT_OUT,
    decomposition_label,
    figure_rows,
    header_lines,
    magnitude_text,
    shows_section,
    verdict,
    where,
)

if TYPE_CHECKING:
    from losscheck.report.model import Report

#: the spaces and colour codes that end a line, and one colour code
_TRAILING = re.compile(r"(?: |\x1b\[[0-9;]*m)+$")
_CODE = re.compile(r"\x1b\[[0-9;]*m")
SEVERITY_STYLE = {Severity.ERROR: "bold red", Severity.WARNING: "yellow", Severity.INFO: "cyan"}


def make_console(width: int, color: bool, file=None, record: bool = False) -> Console:
    return Console(file=file or io.StringIO(), width=width, color_system="standard" if color else None,
                   force_terminal=color, no_color=not color, record=record, highlight=False, soft_wrap=False,
                   emoji=False, markup=False, legacy_windows=False)


def finding_body(item: Finding) -> Text:
    """The message, where it applies (subject, the two figures), and the advice."""
    body = Text(item.message)
    about = where(item)
    if about:
        body.append("\n" + about, style="dim")
    if item.advice:
        body.append(f"\n→ {item.advice}")
    return body


def _never_cut(renderable):
    """Make a section's tables fold long cells instead of cutting them with "…" (rich's default), so
    a narrow terminal loses no information whatever renderer a command registered."""
    from rich.console import Group

    if isinstance(renderable, Table):
        for column in renderable.columns:
            if column.overflow in ("ellipsis", "crop"):
                column.overflow = "fold"
            column.no_wrap = False
        for column in renderable.columns:
            for cell in column.cells:
                _never_cut(cell)
    elif isinstance(renderable, Group):
        for item in renderable.renderables:
            _never_cut(item)
    elif isinstance(renderable, Text):
        if renderable.overflow in ("ellipsis", "crop"):
            renderable.overflow = "fold"
        renderable.no_wrap = False
    return renderable


def build_renderables(report: Report) -> list:
    out: list = []
    summary = report.summary
    if summary:
        out.append(Text(summary + "\n", style="bold", overflow="fold"))
    out.append(Text("\n".join([f"losscheck {report.command}", *header_lines(report), ""]), overflow="fold"))
    rows = figure_rows(report)
    if rows:
        out.append(FitTable("Loss figures", [Col("figure", wrap=False), Col("value", "right", wrap=False),
                                             Col("vs evaluate", "right", wrap=False), Col("what it is", comfort=24)],
                            rows, expand=True, heavy=True))
    decomposition = report.sections.get("decomposition")
    if decomposition:
        out.append(FitTable("Where the gaps come from", [Col("gap"), Col("size", "right", wrap=False)],
                            [(decomposition_label(row), sig(row["value"], signed=True)) for row in decomposition]))
    from losscheck.report.sections import TABLE

    for key, value in report.sections.items():
        if key in TABLE and value:
            out.append(_never_cut(TABLE[key](value)) if shows_section(report, key)
                       else Text(TRACE_LEFT_OUT + "\n", style="dim", overflow="fold"))
    if report.findings:
        finding_rows: list[tuple[Any, ...]] = [
            (Text(str(item.severity), style=SEVERITY_STYLE[item.severity] if item.severity else ""), item.code,
             magnitude_text(item), finding_body(item)) for item in report.findings]
        out.append(FitTable("Findings", [Col("severity", wrap=False), Col("code", wrap=False),
                                         Col("size", "right", wrap=False),
                                         Col("what happened, and what to do", comfort=32)],
                            finding_rows, key=0, expand=True, lines=True, heavy=True))
    else:
        out.append(Text("No findings."))
    for note in report.sections.get("notes", []):
        out.append(Text(f"note: {note}", overflow="fold"))
    state = verdict(report)
    out.append(Text(state, style="bold red" if report.exit_code() else "bold green", overflow="fold"))
    return out


def render_table(report: Report, width: int = 100, color: bool = False) -> str:
    buffer = io.StringIO()
    console = make_console(width, color, file=buffer)
    for item in build_renderables(report):
        console.print(item)
    return "".join(_without_padding(line) + "\n" for line in buffer.getvalue().splitlines())


def _without_padding(line: str) -> str:
    """`line` without the spaces at its end, keeping the colour codes among them."""
    tail = _TRAILING.search(line)
    return line if tail is None else line[:tail.start()] + "".join(_CODE.findall(tail.group(0)))
