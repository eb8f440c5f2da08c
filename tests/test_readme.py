"""The docs' finding-code table and option list stay in sync with the code; the README opens with the two
set-up commands, names every finding code and stays a quick start."""

from __future__ import annotations

import re

from losscheck.core.codes import CODES
from tests.conftest import ROOT


def test_finding_table_matches_registry():
    text = (ROOT / "docs" / "findings.md").read_text()
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

    text = (ROOT / "docs" / "options.md").read_text()
    help_text = CliRunner().invoke(main, ["compare", "--help"]).output
    for option in re.findall(r"^\| `(--[a-z-]+)", text, flags=re.M):
        assert option in help_text, option


def test_readme_is_a_quick_start_naming_every_finding_code():
    text = (ROOT / "README.md").read_text()
    assert len(text.splitlines()) <= 200
    listed = set(re.findall(r"`([a-z][a-z0-9-]*)`", text.split("## Documentation", 1)[1]))
    assert sorted(set(CODES) - listed) == []


def test_readme_links_to_existing_docs_pages():
    text = (ROOT / "README.md").read_text()
    pages = re.findall(r"\]\((docs/[a-z-]+\.md)\)", text)
    assert "docs/findings.md" in pages and "docs/options.md" in pages
    assert all((ROOT / page).is_file() for page in pages), pages
    documented = {p.name for p in (ROOT / "docs").glob("*.md")} - {"index.md"}
    assert sorted(documented - {p.removeprefix("docs/") for p in pages}) == []
