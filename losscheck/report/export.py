"""--output report.html / report.svg: the rendered table exported with rich (for CI artifacts)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.terminal_theme import DEFAULT_TERMINAL_THEME, TerminalTheme

from losscheck.report.table import build_renderables, make_console

if TYPE_CHECKING:
    from losscheck.report.model import Report

_BLACK = (0, 0, 0)
#: --no-color / NO_COLOR: every colour drawn as the foreground (bold and dim stay)
MONOCHROME = TerminalTheme((255, 255, 255), _BLACK, [_BLACK] * 8, [_BLACK] * 8)


def export_rich(report: Report, suffix: str, width: int = 100, color: bool = True) -> str:
    """The same renderables as --format table, as a standalone HTML page or SVG image."""
    from losscheck.report import for_display

    console = make_console(width, color=True, record=True)
    for item in build_renderables(for_display(report)):
        console.print(item)
    title = f"losscheck {report.command}"
    theme = DEFAULT_TERMINAL_THEME if color else MONOCHROME
    if suffix == ".svg":
        return console.export_svg(title=title, theme=theme)
    if suffix == ".html":
        from losscheck.plot import embed_chart

        return embed_chart(report, console.export_html(inline_styles=True, theme=theme))
    raise ValueError(f"unknown export suffix {suffix!r}")
