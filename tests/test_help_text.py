"""`losscheck --help` lists every command with its whole summary, at any terminal width."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from losscheck.cli import main


@pytest.mark.parametrize("width", [60, 80, 100, 200])
def test_command_summaries_are_complete(width):
    text = CliRunner().invoke(main, ["--help"], terminal_width=width).output
    listed = " ".join(text.split("Commands:")[1].split())
    for name, command in main.commands.items():
        summary = command.short_help
        assert summary and summary.endswith(".") and "..." not in summary, name
        assert f"{name} {summary}" in listed, (name, text)
    assert "..." not in listed
