"""--format markdown: for a pull-request comment or $GITHUB_STEP_SUMMARY. Verdict first."""

from __future__ import annotations

from losscheck.findings import Report
from losscheck.report.text import figure_rows, sig, verdict


def _cell(text: object) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def render_markdown(report: Report) -> str:
    lines = [f"**losscheck {report.command}: {verdict(report)}**", ""]
    model = report.header.get("model", {})
    data = report.header.get("data")
    lines.append(f"Model `{model.get('path')}` ({model.get('saved_by')})"
                 + (f", data `{data['path']}` ({data['samples']} samples, batch {data['batch_size']})" if data else ""))
    lines.append("")
    rows = figure_rows(report)
    if rows:
        lines += ["| figure | value | vs evaluate | what it is |", "|---|---:|---:|---|"]
        for name, value, diff, desc in rows:
            lines.append(f"| `{name}` | {value} | {diff} | {_cell(desc)} |")
        lines.append("")
    from losscheck.report.sections import MARKDOWN

    for key, value in report.sections.items():
        if key in MARKDOWN and value:
            lines += [MARKDOWN[key](value), ""]
    if report.findings:
        lines += ["| severity | code | magnitude | finding | advice |", "|---|---|---:|---|---|"]
        for f in report.findings:
            mag = "" if f.magnitude is None else sig(f.magnitude, signed=True)
            lines.append(f"| {f.severity} | `{f.code}` | {mag} | {_cell(f.message)} | {_cell(f.advice)} |")
    else:
        lines.append("No findings.")
    lines.append("")
    return "\n".join(lines)
