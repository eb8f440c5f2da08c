"""The README's finding-code table and option list stay in sync with the code."""

from __future__ import annotations

import re

from losscheck.core.codes import CODES
from tests.conftest import ROOT


def test_finding_table_matches_registry():
    text = (ROOT / "README.md").read_text()
    table = dict(re.findall(r"^\| `([a-z-]+)` \| (info|warning|error) \|", text, flags=re.M))
    assert table == {code: str(entry.severity) for code, entry in CODES.items()}


def test_readme_opens_with_two_setup_commands():
    text = (ROOT / "README.md").read_text()
    block = re.search(r"```bash\n(.*?)```", text, flags=re.S).group(1).strip().splitlines()
    assert len(block) == 2
    assert "losscheck compare" in block[0] and "pip install" in block[0]
    assert "pytest" in block[1] and ".[test" in block[1]
    ci = (ROOT / ".ci" / "run").read_text()
    assert "python -m pytest" in ci
    # CI installs exactly the extras the README's test command installs
    extras = re.compile(r'"\.\[([a-z,]+)\]"')
    assert extras.search(block[1]).group(1) == extras.search(ci).group(1)


def test_help_lists_every_option():
    from click.testing import CliRunner

    from losscheck.cli import main

    text = (ROOT / "README.md").read_text()
    help_text = CliRunner().invoke(main, ["compare", "--help"]).output
    for option in re.findall(r"^\| `(--[a-z-]+)", text, flags=re.M):
        assert option in help_text, option
