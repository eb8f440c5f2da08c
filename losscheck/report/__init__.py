"""Renderers: Report -> str (nothing printed). One module per format."""

from __future__ import annotations

from losscheck.findings import Report

FORMATS = ("table", "json", "markdown")


def render(report: Report, fmt: str, *, width: int = 100, color: bool = False) -> str:
    if fmt == "json":
        from losscheck.report.json import render_json

        return render_json(report)
    if fmt == "markdown":
        from losscheck.report.markdown import render_markdown

        return render_markdown(report)
    if fmt == "table":
        from losscheck.report.table import render_table

        return render_table(report, width=width, color=color)
    raise ValueError(f"unknown format {fmt!r}")
