"""--format markdown: for a pull-request comment or $GITHUB_STEP_SUMMARY (GitHub-flavoured).

The first line is a heading (so several runs in one summary stay apart): the headline of compare and
the callback (report/headline.py), then the verdict; the verdict for the others; then what was
checked, the figures table, where the gaps come from, the findings with their severity, notes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from losscheck.core.finding import Finding
from losscheck.core.formatting import sig
from losscheck.core.text_safety import code_span, for_markdown, prose_for_markdown
from losscheck.report.text import (
    TRACE_LEFT_OUT,
    figure_rows,
    header_lines,
    magnitude_text,
    shows_section,
    verdict,
    where,
)

if TYPE_CHECKING:
    from losscheck.report.model import Report

# Every string that may come from a file (names, versions, paths, messages quoting them) goes through
# for_markdown or code_span (losscheck/core/text_safety.py): no HTML, link or control character of a file
# ever reaches a pull-request comment.


def _cell(text: object) -> str:
    """Text safe inside a table cell: escaped, pipes included; line breaks become <br>."""
    return "<br>".join(prose_for_markdown(line) for line in str(text).replace("\r", "").split("\n"))


def _code(text: object) -> str:
    """Inline code that survives backticks (and HTML or link syntax) in the text."""
    return code_span(text)


def _code_cell(text: object) -> str:
    return code_span(text, table=True)


def _finding(f: Finding) -> list[str]:
    mag = "" if f.magnitude is None else f" ({magnitude_text(f)})"
    head = f"- **{f.severity}** {_code(f.code)}{mag}: {prose_for_markdown(f.message.strip())}"
    lines = [head]
    about = where(f, _code)
    if about:
        lines.append("  " + about)
    if f.advice:
        lines.append("  → " + prose_for_markdown(f.advice.strip()))
    # consecutive lines of a list item need a hard break to stay separate lines
    return [line + ("  " if i < len(lines) - 1 else "") for i, line in enumerate(lines)]


def render_markdown(report: Report) -> str:
    mark = "❌" if report.exit_code() else "✅"
    summary = report.summary
    if summary:
        lines = [f"### {mark} losscheck {report.command}: {prose_for_markdown(summary)}", "", verdict(report), ""]
    else:
        lines = [f"### {mark} losscheck {report.command}: {verdict(report)}", ""]
    head = header_lines(report, _code, for_markdown)
    lines += [line + ("  " if i < len(head) - 1 else "") for i, line in enumerate(head)]
    lines.append("")
    rows = figure_rows(report)
    if rows:
        lines += ["| figure | value | vs evaluate | what it is |", "|---|---:|---:|---|"]
        for name, value, diff, desc in rows:
            lines.append(f"| {_code_cell(name)} | {value} | {diff} | {_cell(desc)} |")
        lines.append("")
    decomposition = report.sections.get("decomposition")
    if decomposition:
        lines += ["<details><summary>Where the gaps come from</summary>", "",
                  "| gap | size |", "|---|---:|"]
        for row in decomposition:
            indent = "&nbsp;&nbsp;" * int(row.get("depth", 0))
            lines.append(f"| {indent}{_cell(row['label'])} | {sig(row['value'], signed=True)} |")
        lines += ["", "</details>", ""]
    from losscheck.report.sections import MARKDOWN

    for key, value in report.sections.items():
        if key in MARKDOWN and value:
            lines += [MARKDOWN[key](value).rstrip("\n") if shows_section(report, key) else f"_{TRACE_LEFT_OUT}_", ""]
    if report.findings:
        lines += [f"#### Findings ({len(report.findings)})", ""]
        for f in report.findings:
            lines += _finding(f)
        lines.append("")
    else:
        lines += ["No findings.", ""]
    notes = report.sections.get("notes") or []
    for note in notes:
        lines.append(f"> note: {prose_for_markdown(str(note).strip())}")
    if notes:
        lines.append("")
    return "\n".join(lines)

