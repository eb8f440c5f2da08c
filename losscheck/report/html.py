"""HTML for notebooks (Report._repr_html_): the verdict, what was checked, the figures table, the
gaps' decomposition, the findings and the notes. Every piece of text is escaped."""

from __future__ import annotations

from html import escape
from typing import TYPE_CHECKING

from losscheck.core.codes import Severity
from losscheck.core.formatting import sig
from losscheck.report.text import figure_rows, header_lines, verdict, where

if TYPE_CHECKING:
    from losscheck.report.model import Report

SEVERITY_COLOR = {Severity.ERROR: "#c62828", Severity.WARNING: "#b26a00", Severity.INFO: "#00838f"}
_TABLE = 'style="border-collapse:collapse;margin:4px 0"'
_CELL = 'style="padding:2px 8px;text-align:{align};vertical-align:top;border-bottom:1px solid #ddd"'


def _row(cells: list[str], head: bool = False, aligns: tuple[str, ...] = ()) -> str:
    tag = "th" if head else "td"
    out = []
    for i, cell in enumerate(cells):
        align = aligns[i] if i < len(aligns) else "left"
        out.append(f"<{tag} {_CELL.format(align=align)}>{cell}</{tag}>")
    return "<tr>" + "".join(out) + "</tr>"


def _code(text: object) -> str:
    return f"<code>{escape(str(text))}</code>"


def render_html(report: Report) -> str:
    code = report.exit_code
    color = "#c62828" if code else "#2e7d32"
    parts = ['<div class="losscheck-report">']
    if report.summary:
        parts.append(f"<p><b>{escape(report.summary)}</b></p>")
    parts.append(f'<p><b style="color:{color}">losscheck {escape(report.command)}: {escape(verdict(report))}</b></p>')
    parts.append("<p>" + "<br>".join(escape(line) for line in header_lines(report)) + "</p>")
    rows = figure_rows(report)
    if rows:
        parts.append(f"<table {_TABLE}>")
        parts.append(_row(["figure", "value", "vs evaluate", "what it is"], head=True))
        for name, value, diff, desc in rows:
            parts.append(_row([_code(name), escape(value), escape(diff), escape(desc)],
                              aligns=("left", "right", "right", "left")))
        parts.append("</table>")
    decomposition = report.sections.get("decomposition")
    if decomposition:
        parts.append(f"<details><summary>Where the gaps come from</summary><table {_TABLE}>")
        for row in decomposition:
            indent = "&nbsp;&nbsp;" * int(row.get("depth", 0))
            parts.append(_row([indent + escape(str(row["label"])), escape(sig(row["value"], signed=True))],
                              aligns=("left", "right")))
        parts.append("</table></details>")
    if report.findings:
        parts.append(f"<table {_TABLE}>")
        parts.append(_row(["severity", "code", "magnitude", "finding"], head=True))
        for f in report.findings:
            sev = f.severity or Severity.INFO
            body = escape(f.message)
            about = where(f)
            if about:
                body += f'<br><span style="opacity:0.7">{escape(about)}</span>'
            if f.advice:
                body += "<br>→ " + escape(f.advice)
            parts.append(_row([f'<span style="color:{SEVERITY_COLOR[sev]}">{escape(str(sev))}</span>',
                               _code(f.code), escape(sig(f.magnitude, 4)), body],
                              aligns=("left", "left", "right", "left")))
        parts.append("</table>")
    else:
        parts.append("<p>No findings.</p>")
    notes = report.sections.get("notes")
    if notes:
        parts.append("<ul>" + "".join(f"<li>{escape(str(n))}</li>" for n in notes) + "</ul>")
    parts.append("</div>")
    return "\n".join(parts)
