"""--output report.html / report.svg: the rendered table exported with rich (for CI artifacts)."""

from __future__ import annotations

from losscheck.findings import Report
from losscheck.report.table import build_renderables, make_console


def export_rich(report: Report, suffix: str, width: int = 100, color: bool = True) -> str:
    """The same renderables as --format table, as a standalone HTML page or SVG image."""
    console = make_console(width, color=color, record=True)
    for item in build_renderables(report):
        console.print(item)
    title = f"losscheck {report.command}"
    if suffix == ".svg":
        return console.export_svg(title=title)
    if suffix == ".html":
        return console.export_html(inline_styles=True)
    raise ValueError(f"unknown export suffix {suffix!r}")
