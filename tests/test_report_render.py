"""Rendered reports on hand-built Report objects (no TensorFlow): golden table/markdown text at a
pinned width without colour, the 80-column guarantee, the verdict line, exports.

Regenerate the golden files after an intended change with
    LOSSCHECK_UPDATE_GOLDEN=1 python -m pytest tests/test_report_render.py
and review the diff.
"""

from __future__ import annotations

import os
import re

import pytest

from losscheck.findings import CODES, Figure, Finding, Report, Severity
from losscheck.report import FORMATS, render
from tests.conftest import ROOT

GOLDEN = ROOT / "tests" / "golden"
HEADER = {
    "losscheck_version": "0.1.0",
    "keras_version": "3.15.1",
    "backend": "tensorflow",
    "model": {"path": "fixtures/frozen_bn_dropout/model.keras", "format": "keras", "saved_by": "keras 3.15.1",
              "outputs": ["out"], "losses": {"out": "mean_squared_error"}, "loss_weights": {"out": 1.0}},
    "data": {"path": "fixtures/frozen_bn_dropout/data.npz", "samples": 80, "batch_size": 32},
}


def compare_report(**kw) -> Report:
    """A compare report with every kind of row: all figures (one measured on a subset), the gap
    decomposition, findings of each severity with subject/between/advice, text that looks like rich
    markup or breaks a markdown table, notes."""
    r = Report("compare", HEADER, **kw)
    r.figures = {
        "fit_epoch": Figure(7.797583, "what model.fit(..., epochs=1, shuffle=False) reports, run on a throwaway copy"),
        "train_mode": Figure(8.0138521, "every layer in training behaviour, saved weights, no update", {"samples": 64}),
        "train_mode_dropout_only": Figure(8.0138521, "only Dropout-family layers in training behaviour"),
        "train_mode_batchnorm_only": Figure(6.9012345, "only BatchNormalization in training behaviour"),
        "evaluate": Figure(6.8853313, "what model.evaluate(...) reports (total loss)"),
        "manual": Figure(6.8853311, "losscheck's numpy recomputation | data loss (no penalties)"),
        "regularization": Figure(0.0, "penalties (model.losses) included in evaluate"),
    }
    r.findings = [
        Finding("unexplained", "evaluate and manual differ by 3.1e-05 relative, which no cause accounts for.",
                magnitude=2.13e-4,
                advice="Rerun with --debug; check custom losses for a reduction of their own."),
        Finding("batchnorm-batch-stats", "BatchNormalization (bn_1) uses batch statistics in training: "
                "+0.0159 between train_mode_batchnorm_only and evaluate.", magnitude=0.0159123,
                subject="bn_1", between=("train_mode_batchnorm_only", "evaluate"),
                advice="Freeze it with training=False in the functional call if that is what you meant."),
        Finding("dropout", "Dropout layers (head_dropout) zero activations only in training.",
                magnitude=1.1285207, subject="head_dropout", between=("train_mode_dropout_only", "evaluate"),
                advice="Compare fit and evaluate with this in mind."),
        Finding("probability-clipping", "crossentropy clips probabilities to [eps, 1-eps] | [bold]not markup[/bold]",
                magnitude=None, advice="Use `from_logits=True` on a\nlogits output."),
    ]
    r.sections["decomposition"] = [
        {"name": "fit_epoch - evaluate", "label": "fit_epoch - evaluate", "value": 0.9122517, "depth": 0,
         "parent": None, "between": ["fit_epoch", "evaluate"]},
        {"name": "weight update", "label": "fit_epoch - train_mode (weight update)", "value": -0.2162691, "depth": 1,
         "parent": "fit_epoch - evaluate", "between": ["fit_epoch", "train_mode"]},
        {"name": "training-mode layers", "label": "train_mode - evaluate (training-mode layers)", "value": 1.1285208,
         "depth": 1, "parent": "fit_epoch - evaluate", "between": ["train_mode", "evaluate"]},
        {"name": "dropout", "label": "train_mode_dropout_only - evaluate (dropout)", "value": 1.1285208, "depth": 2,
         "parent": "training-mode layers", "between": ["train_mode_dropout_only", "evaluate"]},
        {"name": "batchnorm", "label": "train_mode_batchnorm_only - evaluate (batchnorm)", "value": 0.0159032,
         "depth": 2, "parent": "training-mode layers", "between": ["train_mode_batchnorm_only", "evaluate"]},
        {"name": "evaluate - manual", "label": "evaluate - manual", "value": 2.0e-07, "depth": 0, "parent": None,
         "between": ["evaluate", "manual"]},
        {"name": "regularization", "label": "regularization (the figure)", "value": 0.0, "depth": 1,
         "parent": "evaluate - manual", "between": None},
        {"name": "residual", "label": "residual", "value": 2.0e-07, "depth": 1, "parent": "evaluate - manual",
         "between": None},
    ]
    r.sections["notes"] = ["optimizer state was not in the file; fit_epoch starts from a fresh optimizer"]
    return r


def inspect_report() -> Report:
    header = {k: v for k, v in HEADER.items() if k != "data"}
    r = Report("inspect", header)
    r.findings = [Finding("legacy-keras", "The file was saved by tf.keras 2.15.", advice="Figures are Keras 3's.")]
    return r


def clean_report() -> Report:
    r = Report("compare", HEADER)
    r.figures = {"fit_epoch": Figure(0.5, "fit"), "evaluate": Figure(0.5, "evaluate"), "manual": Figure(0.5, "numpy")}
    return r


CASES = {
    "compare": (compare_report, {}),
    "compare_fail_max_gap": (compare_report, {"fail_on": "never", "max_gap": 0.05}),
    "inspect": (inspect_report, {}),
    "clean": (clean_report, {}),
}


def _build(name: str) -> Report:
    factory, overrides = CASES[name]
    report = factory()
    for key, value in overrides.items():
        setattr(report, key, value)
    return report


def _golden(name: str, text: str) -> None:
    path = GOLDEN / name
    if os.environ.get("LOSSCHECK_UPDATE_GOLDEN"):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    assert path.is_file(), f"{path} missing: run with LOSSCHECK_UPDATE_GOLDEN=1 to create it"
    assert text == path.read_text(encoding="utf-8"), f"{name} differs from the golden file"


@pytest.mark.parametrize("case", sorted(CASES))
def test_table_golden_at_80_columns(case):
    _golden(f"{case}.table.txt", render(_build(case), "table", width=80, color=False))


@pytest.mark.parametrize("case", sorted(CASES))
def test_markdown_golden(case):
    _golden(f"{case}.md", render(_build(case), "markdown"))


@pytest.mark.parametrize("fmt", FORMATS)
def test_rendering_is_stable_across_runs(fmt):
    first = render(compare_report(), fmt, width=80)
    assert first == render(compare_report(), fmt, width=80)
    assert first.strip()


@pytest.mark.parametrize("width", [60, 80, 100, 140])
def test_table_never_cuts_text(width):
    text = render(compare_report(), "table", width=width, color=False)
    assert "…" not in text and "..." not in text.replace("fit(...,", "").replace("evaluate(...)", "")
    assert max(len(line) for line in text.splitlines()) <= width


def test_table_at_80_columns_keeps_every_word():
    report = compare_report()
    text = render(report, "table", width=80, color=False)
    joined = " ".join(text.split())
    expected = []
    for name, fig in report.figures.items():
        expected += [name, *fig.description.split()]
    for f in report.findings:
        expected += [f.code, str(f.severity), *f.message.split(), *f.advice.split()]
        expected += [f.subject] if f.subject else []
        expected += list(f.between or ())
    for row in report.sections["decomposition"]:
        expected += row["label"].split()
    expected += report.sections["notes"][0].split()
    expected += ["7.79758", "+0.912252", "6.88533", "+0.0159", "+1.129", "+0.000213"]  # values, sizes
    missing = [w for w in expected if not re.search(r"(?<!\S)" + re.escape(w) + r"(?=[\s;,:]|$)", joined)]
    assert not missing, f"lost at 80 columns: {missing}\n{text}"
    assert "(first 64 samples)" in joined


def test_table_prints_markup_lookalikes_verbatim():
    text = " ".join(render(compare_report(), "table", width=120, color=False).split())
    assert "[eps, 1-eps] | [bold]not markup[/bold]" in text


def test_table_colour_only_when_asked():
    plain = render(compare_report(), "table", width=80, color=False)
    coloured = render(compare_report(), "table", width=80, color=True)
    assert "\x1b[" not in plain
    assert "\x1b[" in coloured
    assert re.sub(r"\x1b\[[0-9;]*m", "", coloured) == plain


def test_verdict_is_the_markdown_first_line_and_the_table_last_line():
    report = compare_report()  # an error finding, default --fail-on error
    md = render(report, "markdown").splitlines()
    assert md[0].startswith("### ❌ losscheck compare: FAIL (exit 1): 1 error, 1 warning, 2 info")
    assert "1 at or above --fail-on error" in md[0]
    table = render(report, "table", width=80).rstrip("\n").splitlines()
    assert table[-1].startswith("FAIL (exit 1)")


@pytest.mark.parametrize("fail_on, max_gap, first", [
    ("never", None, "### ✅ losscheck compare: OK (exit 0): 1 error, 1 warning, 2 info; --fail-on never"),
    ("never", 0.5, "### ✅ losscheck compare: OK (exit 0): 1 error, 1 warning, 2 info; --fail-on never; "
                   "gaps within --max-gap 50%"),
    ("never", 0.05, "### ❌ losscheck compare: FAIL (exit 1): 1 error, 1 warning, 2 info; --fail-on never; "
                    "fit_epoch vs evaluate 13.2% > --max-gap 5%; train_mode vs evaluate 16.4% > --max-gap 5%"),
    ("warning", None, "### ❌ losscheck compare: FAIL (exit 1): 1 error, 1 warning, 2 info; "
                      "2 at or above --fail-on warning"),
])
def test_verdict_says_why(fail_on, max_gap, first):
    report = compare_report(fail_on=fail_on, max_gap=max_gap)
    assert render(report, "markdown").splitlines()[0] == first


def test_verdict_without_findings():
    assert render(clean_report(), "markdown").splitlines()[0] == "### ✅ losscheck compare: OK (exit 0): no findings"
    report = compare_report()
    report.findings = [f for f in report.findings if f.severity < Severity.ERROR]
    assert "none at or above --fail-on error" in render(report, "markdown").splitlines()[0]


def test_markdown_tables_are_well_formed():
    md = render(compare_report(), "markdown")
    for block in re.findall(r"(?:^\|.*\|$\n?)+", md, flags=re.M):
        rows = [r for r in block.strip().splitlines()]
        cells = {len(re.split(r"(?<!\\)\|", r)) for r in rows}
        assert len(cells) == 1, block  # every row has the same number of (unescaped) cells
    assert "\\|" in md  # the pipe in a finding message is escaped...
    assert "\\[bold\\]not markup\\[/bold\\]" in md  # ...brackets escaped (no link syntax), nothing lost
    assert "- **error** `unexplained`" in md and "- **warning** `batchnorm-batch-stats`" in md


def test_markdown_lists_every_finding_with_severity_and_advice():
    report = compare_report()
    md = render(report, "markdown")
    for f in report.findings:
        assert f"**{f.severity}** `{f.code}`" in md
        assert " ".join(f.advice.split()) in " ".join(md.split())


@pytest.mark.parametrize("suffix, marker", [(".html", "<!DOCTYPE html>"), (".svg", "<svg")])
def test_rich_export(suffix, marker):
    from losscheck.report.export import export_rich

    out = export_rich(compare_report(), suffix)
    assert marker in out
    assert "batchnorm-batch-stats" in out and "train_mode_batchnorm_only" in out
    assert re.search(r"Loss(&#160;| )figures", out)
    from rich.terminal_theme import DEFAULT_TERMINAL_THEME as theme

    ansi = {theme.ansi_colors[i].hex for i in (*range(1, 7), *range(9, 15))}  # not black/white
    assert ansi & set(re.findall(r"#[0-9a-f]{6}", out))  # severity and verdict in colour...
    assert not ansi & set(re.findall(r"#[0-9a-f]{6}", export_rich(compare_report(), suffix, color=False)))


def test_every_registered_code_renders():
    """Each code of the registry renders in every format (e.g. a new code with an odd character)."""
    report = clean_report()
    report.findings = [Finding(code, f"message for {code}", magnitude=0.5) for code in CODES]
    for fmt in FORMATS:
        text = render(report, fmt, width=80)
        assert all(code in text for code in CODES), fmt


def test_section_tables_registered_by_commands_are_folded_not_cut(monkeypatch):
    """A command's own section table (rich cuts no_wrap/ellipsis cells with "…" by default) keeps
    every character at 80 columns."""
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    from losscheck.report import sections

    def wide(rows):
        t = Table(title="wide section")
        for name in ("first column", "second", "third", "fourth", "fifth", "sixth"):
            t.add_column(name, no_wrap=True)
        for row in rows:
            t.add_row(*row)
        return Group(t, Text("x" * 120, overflow="ellipsis", no_wrap=True))

    monkeypatch.setitem(sections.TABLE, "wide_section", wide)
    report = clean_report()
    report.sections["wide_section"] = [[f"cell{i}-" + "abcdefghij" * 2 for i in range(6)]]
    text = render(report, "table", width=80, color=False)
    assert "…" not in text
    from collections import Counter

    needed = Counter("".join(report.sections["wide_section"][0]) + "x" * 120)
    assert not needed - Counter(text), "characters lost"  # cells fold across lines, none dropped


@pytest.mark.parametrize("code, magnitude, shown", [
    ("batch-size-dependence", 1.0031, "x1.003"),
    ("loss-rank", 32.0, "x32"),
    ("non-finite", 1.0, "1 value"),
    ("non-finite", 3.0, "3 values"),
    ("label-smoothing", 0.3250829, "floor 0.3251"),
    ("dropout", 1.1285207, "+1.129"),
])
def test_magnitudes_show_their_unit(code, magnitude, shown):
    """A ratio is x..., a count is 'N values' (never '+1'), a floor says so, a gap is signed."""
    from losscheck.findings import MAGNITUDE_KINDS

    report = clean_report()
    report.findings = [Finding(code, f"message for {code}", magnitude=magnitude)]
    assert report.findings[0].to_json()["magnitude_kind"] == MAGNITUDE_KINDS[code]
    table = render(report, "table", width=100, color=False)
    md = render(report, "markdown")
    assert re.search(r"(?<![\w.+])" + re.escape(shown) + r"(?![\w.])", table), table
    assert f"`{code}` ({shown})" in md
    if MAGNITUDE_KINDS[code] == "count":
        assert "+1" not in table and "+3" not in table and "+1" not in md


def test_every_code_has_a_magnitude_kind():
    from losscheck.findings import MAGNITUDE_KINDS

    assert set(MAGNITUDE_KINDS) == set(CODES)
    assert set(MAGNITUDE_KINDS.values()) <= {"gap", "ratio", "count", "floor", None}
    for code in CODES:
        f = Finding(code, "m", magnitude=1.0)
        assert f.to_json()["magnitude_kind"] == MAGNITUDE_KINDS[code]
        assert Finding(code, "m").to_json()["magnitude_kind"] is None
