"""MkDocs hooks for the documentation site (mkdocs.yml `hooks`)."""

from __future__ import annotations

import re

_CODE_SPAN = re.compile(r"`[^`\n]*`")


def _unescape_pipes(match: re.Match[str]) -> str:
    return match.group(0).replace("\\|", "|")


def on_page_markdown(markdown: str, **_: object) -> str:
    """Table cells write a `|` inside a code span as `\\|` (GitHub's table syntax); Python-Markdown
    keeps the backslash there and already ignores pipes inside code spans, so drop it."""
    lines = [_CODE_SPAN.sub(_unescape_pipes, line) if line.startswith("|") else line
             for line in markdown.split("\n")]
    return "\n".join(lines)
