"""The figure and format registries stay true: the docs (figures.md) list every compare figure, each figure's
module exists, and --output suffixes and --format choices come from the formats table."""

from __future__ import annotations

import importlib.util
import re

import pytest

from losscheck.core.figures import (
    FIGURE_ORDER,
    FIGURES,
    GATED_FIGURES,
    KINDS,
    SUBSET_FIGURES,
    figure_descriptions,
    own_figure_description,
)
from losscheck.core.taxonomy import FAMILIES, family_figure
from losscheck.report.formats import FORMATS, OPTION_FORMATS, format_for_suffix
from tests.conftest import ROOT

COMMANDS = {"compare", "breakdown", "inspect", "callback"}


def _documented_compare_figures() -> set[str]:
    text = (ROOT / "docs" / "figures.md").read_text()
    section = text.split("# What `compare` measures", 1)[1].split("\n\n", 2)[1]
    rows = [line for line in section.splitlines() if line.startswith("| `")]
    return {name for row in rows for name in re.findall(r"`([^`]+)`", row.split(" | ")[0])}


def test_docs_list_every_compare_figure():
    compare = {name for name, f in FIGURES.items() if "compare" in f.commands}
    listed = _documented_compare_figures()
    assert sorted(compare - listed) == []
    assert sorted(listed - set(FIGURES)) == []


def test_every_figure_is_described_by_the_registry():
    for name, f in FIGURES.items():
        assert f.kind in KINDS, name
        assert f.commands and set(f.commands) <= COMMANDS, name
        assert f.description and not f.description.endswith("."), name
        assert f.pattern == ("<key>" in name), name
        assert set(f.described) <= set(f.commands), name
        assert importlib.util.find_spec(f.measured_in) is not None, (name, f.measured_in)


def test_derived_tables():
    assert all(family_figure(family) in FIGURE_ORDER for family in FAMILIES)
    assert set(GATED_FIGURES) <= set(FIGURE_ORDER) and set(SUBSET_FIGURES) <= set(FIGURE_ORDER)
    assert "inspect" not in {c for f in FIGURES.values() for c in f.commands}
    assert figure_descriptions("inspect") == {}
    assert set(figure_descriptions("breakdown")) == {"evaluate", "manual", "regularization"}
    assert figure_descriptions("breakdown")["manual"] != figure_descriptions("compare")["manual"]


@pytest.mark.parametrize("name, key", [("fit_epoch_kl_loss", "kl_loss"), ("evaluate_val_total_loss", "total_loss"),
                                       ("evaluate_total_loss", "total_loss")])
def test_own_figures_are_described_by_their_pattern(name, key):
    text = own_figure_description(name)
    assert text.startswith("what model.") and f" as {key} (" in text
    assert ("validation" in text) == name.startswith("evaluate_val_")
    assert ("fit" in text) == name.startswith("fit_epoch_")


def test_an_unknown_own_figure_is_its_name():
    assert own_figure_description("val_kl") == "val_kl"


def test_formats_table():
    assert OPTION_FORMATS[:3] == ("table", "json", "markdown")
    seen: list[str] = []
    for name, f in FORMATS.items():
        assert f.name == name and f.content_type
        assert all(s.startswith(".") and s == s.lower() for s in f.suffixes), name
        seen += f.suffixes
        assert not (f.option and f.export), name
        assert f.export <= bool(f.suffixes), name  # an export is reached through its suffix only
    assert len(seen) == len(set(seen))
    assert format_for_suffix(".MD").name == "markdown"
    assert format_for_suffix(".html").export and format_for_suffix(".txt") is None


def test_cli_format_choices_are_the_table():
    from click.testing import CliRunner

    from losscheck.cli import main

    out = CliRunner().invoke(main, ["compare", "--help"], terminal_width=200).output
    assert "[" + "|".join(OPTION_FORMATS) + "]" in " ".join(out.split())
