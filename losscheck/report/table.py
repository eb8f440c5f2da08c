"""--format table: rich tables rendered to a string (fixed width, optional colour)."""

from __future__ import annotations

import io

from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from losscheck.findings import Report, Severity
from losscheck.report.text import figure_rows, sig, verdict

SEVERITY_STYLE = {Severity.ERROR: "bold red", Severity.WARNING: "yellow", Severity.INFO: "cyan"}


def make_console(width: int, color: bool, file=None, record: bool = False) -> Console:
    return Console(file=file or io.StringIO(), width=width, color_system="standard" if color else None,
                   force_terminal=color, no_color=not color, record=record, highlight=False, soft_wrap=False)


def build_renderables(report: Report) -> list:
    out: list = []
    model = report.header.get("model", {})
    data = report.header.get("data")
    title = f"losscheck {report.command}: {model.get('path')} ({model.get('saved_by')})"
    if data:
        title += f"\ndata {data['path']}: {data['samples']} samples, batch {data['batch_size']}"
    out.append(Text(title))
    losses = model.get("losses") or {}
    if losses:
        weights = model.get("loss_weights") or {}
        out.append(Text("loss: " + "; ".join(f"{o}: {l}" + (f" x{weights[o]:g}" if weights.get(o, 1.0) != 1.0 else "")
                                         for o, l in losses.items())))
    rows = figure_rows(report)
    if rows:
        t = Table(title="Loss figures", box=box.SIMPLE_HEAVY, expand=False)
        t.add_column("figure", no_wrap=True)
        t.add_column("value", justify="right", no_wrap=True)
        t.add_column("vs evaluate", justify="right", no_wrap=True)
        t.add_column("what it is", ratio=1)
        for name, value, diff, desc in rows:
            t.add_row(name, value, diff, desc)
        out.append(t)
    decomposition = report.sections.get("decomposition")
    if decomposition:
        d = Table(title="Where the gaps come from", box=box.SIMPLE, expand=False)
        d.add_column("gap")
        d.add_column("size", justify="right", no_wrap=True)
        for label, value in decomposition.items():
            d.add_row(label, sig(value, signed=True))
        out.append(d)
    from losscheck.report.sections import TABLE

    for key, value in report.sections.items():
        if key in TABLE and value:
            out.append(TABLE[key](value))
    if report.findings:
        f = Table(title="Findings", box=box.SIMPLE_HEAVY, expand=True, show_lines=True)
        f.add_column("severity", no_wrap=True)
        f.add_column("code", no_wrap=True)
        f.add_column("size", justify="right", no_wrap=True)
        f.add_column("what happened, and what to do", ratio=1)
        for item in report.findings:
            sev = Text(str(item.severity), style=SEVERITY_STYLE.get(item.severity, ""))
            body = item.message + (f"\n→ {item.advice}" if item.advice else "")
            f.add_row(sev, item.code, sig(item.magnitude, 4, signed=True), body)
        out.append(f)
    else:
        out.append(Text("No findings."))
    for note in report.sections.get("notes", []):
        out.append(Text(f"note: {note}"))
    out.append(Text(verdict(report)))
    return out


def render_table(report: Report, width: int = 100, color: bool = False) -> str:
    console = make_console(width, color)
    for item in build_renderables(report):
        console.print(item)
    return console.file.getvalue()
