"""Renderers: Report -> str (nothing printed). One module per format."""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Callable
from typing import Any

from losscheck.findings import Report
from losscheck.text_safety import for_terminal


def _clean(value: Any) -> Any:
    if isinstance(value, str) and not isinstance(value, enum.Enum):  # enums keep their type
        return for_terminal(value, keep_newlines=True)
    if isinstance(value, dict):
        return {_clean(k): _clean(v) for k, v in value.items()}
    if type(value) in (list, tuple):
        return type(value)(_clean(v) for v in value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.replace(value, **{f.name: _clean(getattr(value, f.name))
                                             for f in dataclasses.fields(value) if f.init})
    return value


def for_display(report: Report) -> Report:
    """A copy of the report in which no string holds a control character (ESC, C1, bidi overrides:
    see losscheck/text_safety.py), for every human format. JSON is rendered from the report itself:
    json.dumps escapes those characters already."""
    return _clean(report)


def _table(report: Report, width: int, color: bool) -> str:
    from losscheck.report.table import render_table

    return render_table(for_display(report), width=width, color=color)


def _json(report: Report, width: int, color: bool) -> str:
    from losscheck.report.json import render_json

    return render_json(report)


def _markdown(report: Report, width: int, color: bool) -> str:
    from losscheck.report.markdown import render_markdown

    return render_markdown(for_display(report))


def _github(report: Report, width: int, color: bool) -> str:
    from losscheck.report.github import render_github

    return render_github(for_display(report))


#: --format name -> renderer (report, width, color) -> str; the CLI's --format choices are these names
FORMATS: dict[str, Callable[[Report, int, bool], str]] = {
    "table": _table, "json": _json, "markdown": _markdown, "github": _github,
}


def render(report: Report, fmt: str, *, width: int = 100, color: bool = False) -> str:
    """The report in format `fmt` (a FORMATS name)."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}")
    return FORMATS[fmt](report, width, color)
