"""Renderers: Report -> str (nothing printed). One module per format; the formats table (formats.py)
dispatches to them. Here: the control-character-free copy every human format renders."""

from __future__ import annotations

import dataclasses
import enum
from typing import TYPE_CHECKING, Any

from losscheck.core.text_safety import for_terminal

if TYPE_CHECKING:
    from losscheck.report.model import Report


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
    see losscheck/core/text_safety.py), for every human format. JSON is rendered from the report itself:
    json.dumps escapes those characters already."""
    return _clean(report)
