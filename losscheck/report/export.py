"""--output report.html / report.svg: the rendered table exported with rich (for CI artifacts)."""

from __future__ import annotations

from losscheck.findings import Report
from losscheck.report.table import build_renderables, make_console


def export_rich(report: Report, suffix: str, width: int = 110) -> str:
    console = make_console(width, color=True, record=True)
    for item in build_renderables(report):
        console.print(item)
    title = f"losscheck {report.command}"
    return console.export_svg(title=title) if suffix == ".svg" else console.export_html(inline_styles=True)
