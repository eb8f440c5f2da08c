"""The one table of report formats: the CLI's --format choices, the --output suffixes that pick a
format, and the renderer each name dispatches to. Adding a format is one entry here (and its
renderer module). Renderer modules are imported on first use."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from losscheck.report import for_display

if TYPE_CHECKING:
    from losscheck.report.model import Report

#: (report, width, color) -> the rendered text
Renderer = Callable[["Report", int, bool], str]


@dataclass(frozen=True)
class Format:
    """One format. `suffixes`: --output suffixes (lower case) that pick it when --format is not given;
    `option`: a --format choice (False: reached through an --output suffix only); `export`: the rendered
    table exported by rich, picked by its suffix whatever --format says, in colour unless --no-color;
    `log`: read from a CI job's log, so always written to stdout, --output files taking the format of
    their suffix (the table otherwise)."""

    name: str
    render: Renderer
    content_type: str
    suffixes: tuple[str, ...] = ()
    option: bool = True
    export: bool = False
    log: bool = False


def _table(report: Report, width: int, color: bool) -> str:
    from losscheck.report.table import render_table

    return render_table(for_display(report), width=width, color=color)


def _json(report: Report, width: int, color: bool) -> str:
    from losscheck.report.json import render_json

    return render_json(report)  # json.dumps escapes control characters itself


def _markdown(report: Report, width: int, color: bool) -> str:
    from losscheck.report.markdown import render_markdown

    return render_markdown(for_display(report))


def _github(report: Report, width: int, color: bool) -> str:
    from losscheck.report.github import render_github

    return render_github(for_display(report))


def _exported(suffix: str) -> Renderer:
    def render(report: Report, width: int, color: bool) -> str:
        from losscheck.report.export import export_rich

        return export_rich(report, suffix, width=width, color=color)

    return render


FORMATS: dict[str, Format] = {f.name: f for f in (
    Format("table", _table, "text/plain"),
    Format("json", _json, "application/json", (".json",)),
    Format("markdown", _markdown, "text/markdown", (".md", ".markdown")),
    Format("github", _github, "text/plain", log=True),
    Format("html", _exported(".html"), "text/html", (".html",), option=False, export=True),
    Format("svg", _exported(".svg"), "image/svg+xml", (".svg",), option=False, export=True),
)}
#: the --format choices, in help order
OPTION_FORMATS = tuple(name for name, f in FORMATS.items() if f.option)


def format_for_suffix(suffix: str) -> Format | None:
    """The format an --output file's suffix names (case-insensitive), or None."""
    suffix = suffix.lower()
    return next((f for f in FORMATS.values() if suffix in f.suffixes), None)


def render(report: Report, fmt: str, *, width: int = 100, color: bool = False) -> str:
    """The report in format `fmt` (a FORMATS name)."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}")
    return FORMATS[fmt].render(report, width, color)
