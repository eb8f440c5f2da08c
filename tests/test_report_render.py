"""Rendered reports on hand-built Report objects (no TensorFlow): golden table/markdown text at a
pinned width without colour, the 80-column guarantee, the verdict line, exports.

Regenerate the golden files after an intended change with
    LOSSCHECK_UPDATE_GOLDEN=1 python -m pytest tests/test_report_render.py
and review the diff.
"""

from __future__ import annotations

import dataclasses
import os
import re

import pytest

from losscheck.core.codes import CODES, Severity
from losscheck.core.finding import Finding
from losscheck.core.gate import Gate
from losscheck.report.formats import OPTION_FORMATS, render
from losscheck.report.model import Figure, Report
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
    r = Report("compare", HEADER, gate=Gate(**kw))
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


SEG_TRACE = {
    "batch_size": 32, "batches": 2,
    "outputs": {"mask": {"loss": "binary_crossentropy", "reduction": "sum_over_batch_size", "steps": [
        {"step": "element-wise values", "operation": "-[y log p + (1 - y) log(1 - p)] (from the cached "
         "pre-activation logits)", "shape": [32, 12, 12, 5], "value": 0.0503438},
        {"step": "loss function", "operation": "mean over the last axis (axis -1, size 5)", "shape": [32, 12, 12],
         "value": 0.0503438},
        {"step": "reduction", "operation": "sum / 4608 values = mean over the batch (and positions)", "shape": [],
         "value": 0.0503438},
        {"step": "loss weight", "operation": "x loss weight 1", "shape": [], "value": 0.0503438}]}},
    "total": [{"step": "penalties", "operation": "+ penalties (model.losses: regularizers, add_loss)", "shape": [],
               "value": 0.0503438},
              {"step": "reported", "operation": "reported value (evaluate: batch means weighted by batch size)",
               "shape": [], "value": 0.0503438}],
    "batch_size_probe": {"batch_sizes": [32, 16], "values": [0.0503438, 0.0503438], "samples": None, "ratio": 1.0},
}


def seg_compare_report() -> Report:
    """compare on a segmentation model: the reduction trace and a loss name longer than a narrow column."""
    r = Report("compare", {**HEADER, "model": {**HEADER["model"], "losses": {"mask": "binary_crossentropy"}}})
    r.figures = {"fit_epoch": Figure(0.0503109, "what model.fit(..., epochs=1, shuffle=False) reports"),
                 "evaluate": Figure(0.0503438, "what model.evaluate(...) reports (total loss)"),
                 "manual": Figure(0.0503438, "losscheck's numpy recomputation of the data loss")}
    r.sections["reduction_trace"] = SEG_TRACE
    r.findings = [Finding("weight-update", "fit reports 0.0503109, the average of losses measured before each of "
                          "its 2 updates; the weights changed during the epoch.", magnitude=-3.287e-5,
                          between=("fit_epoch", "train_mode"), advice="Call evaluate after fit.")]
    return r


def logits_compare_report() -> Report:
    """A loss label as long as a narrow terminal's column: the trace and findings stack."""
    r = seg_compare_report()
    label = "CategoricalCrossentropy(from_logits=True)"
    trace = {**SEG_TRACE, "outputs": {"probs": {**SEG_TRACE["outputs"]["mask"], "loss": label}}}
    r.sections["reduction_trace"] = trace
    r.findings.append(Finding("from-logits-mismatch", f"Output 'probs' ends in a softmax, but its loss, {label}, "
                              "treats them as logits.", magnitude=0.008679, subject="probs",
                              advice="Use from_logits=False with the softmax output."))
    return r


def inspect_full_report() -> Report:
    """inspect with every section: loss configuration (eight columns), training layers, regularizers."""
    header = {k: v for k, v in HEADER.items() if k != "data"}
    r = Report("inspect", header)
    r.sections["loss_config"] = {
        "reg": {"loss": "mse", "kind": "mean_squared_error", "reduction": "sum_over_batch_size", "options": {},
                "loss_weight": 0.5, "output_shape": [None, 1], "final_activation": "linear", "feature_axis": None},
        "cls": {"loss": "binary_crossentropy", "kind": "binary_crossentropy", "reduction": "sum_over_batch_size",
                "options": {"from_logits": False, "label_smoothing": 0.1}, "loss_weight": 2.0,
                "output_shape": [None, 16, 16, 3], "final_activation": "sigmoid", "feature_axis": -1}}
    r.sections["training_layers"] = {"dropout": ["head_dropout"], "batchnorm": [], "frozen_batchnorm": ["bn_1", "bn_2"],
                                     "noise": []}
    r.sections["regularizers"] = [
        {"layer": "l2_dense", "attribute": "kernel", "regularizer": "L2(l2=0.05)", "counted": True},
        {"layer": "frozen_conv", "attribute": "kernel", "regularizer": "L1L2(l1=0.01, l2=0.01)", "counted": False}]
    r.findings = [Finding("legacy-keras", "The file was saved by tf.keras 2.15.", advice="Figures are Keras 3's.")]
    return r


def _channel_row(c: int, loss: float, prevalence: float, recall: float) -> dict:
    return {"output": "mask", "class": c, "kind": "channel", "loss": loss, "count": 7200, "share": loss / 0.2517,
            "contribution": loss / 5, "weight": 0.2, "prevalence": prevalence, "positives": int(7200 * prevalence),
            "loss_positives": 2 * loss, "loss_negatives": loss / 2, "share_from_positives": 0.5, "recall": recall,
            "precision": 0.99, "iou": recall * 0.99}


def per_class_report() -> Report:
    """breakdown --per-class on channel classes: every JSON column, precision included."""
    r = Report("breakdown", HEADER)
    r.figures = {"evaluate": Figure(0.0503438, "what model.evaluate(...) reports (total loss)")}
    r.sections["total"] = 0.0503438
    r.sections["per_class"] = [_channel_row(0, 0.0365, 0.506, 0.989), _channel_row(1, 0.0357, 0.309, 0.988),
                               _channel_row(4, 0.1015, 0.0197, 0.0)]
    r.sections["identity"] = "mask: loss = mean over the 5 channels of the channel losses"
    return r


def per_output_report() -> Report:
    r = Report("breakdown", HEADER)
    r.sections["total"] = 3.9042889
    r.sections["per_output"] = [
        {"output": "reg", "loss": 4.58536, "weight": 0.5, "weighted": 2.29268, "share": 0.587, "keras_log": 5.02988,
         "keras_log_difference": 0.445},
        {"output": "cls", "loss": 0.805805, "weight": 2.0, "weighted": 1.61161, "share": 0.413,
         "keras_log": 0.80577, "keras_log_difference": -3.12e-05}]
    r.sections["regularization"] = {"total": 0.322975, "share": 0.293, "layers": [
        {"layer": "l2_dense", "kind": "weights", "penalty": 0.293935, "share": 0.267},
        {"layer": "act_reg", "kind": "activity", "penalty": 0.0290401, "share": 0.0264}]}
    return r


def per_sample_report() -> Report:
    r = Report("breakdown", HEADER)
    r.sections["per_sample"] = [
        {"index": 30, "loss": 0.0805194, "target": "positives per channel [84, 33, 94, 20, 8] of 144",
         "prediction": "predicted positives [85, 33, 94, 20, 0]"},
        {"index": 25, "loss": 0.0694930, "target": "positives per channel [68, 40, 94, 28, 6] of 144",
         "prediction": "predicted positives [67, 41, 94, 28, 0]"}]
    r.sections["distribution"] = {
        "count": 1, "mean": 0.05, "std": 0.0, "min": 0.05, "max": 0.05, "quantiles": {"p50": 0.05},
        "histogram": {"scale": "linear", "edges": [0.04, 0.05, 0.06], "counts": [0, 1]}}
    return r


CASES = {
    "compare": (compare_report, {}),
    "compare_fail_max_gap": (compare_report, {"fail_on": "never", "max_gap": 0.05}),
    "inspect": (inspect_report, {}),
    "clean": (clean_report, {}),
    "seg_compare": (seg_compare_report, {}),
    "logits_compare": (logits_compare_report, {}),
    "inspect_full": (inspect_full_report, {}),
    "per_class": (per_class_report, {}),
    "per_output": (per_output_report, {}),
    "per_sample": (per_sample_report, {}),
}
#: the markdown goldens cover the compare/inspect report shapes (table goldens cover all)
MARKDOWN_CASES = ("compare", "compare_fail_max_gap", "inspect", "clean")
WIDTHS = (80, 100, 160)


def _build(name: str) -> Report:
    factory, overrides = CASES[name]
    return Gate(**overrides).apply(factory())


def _golden(name: str, text: str) -> None:
    path = GOLDEN / name
    if os.environ.get("LOSSCHECK_UPDATE_GOLDEN"):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    assert path.is_file(), f"{path} missing: run with LOSSCHECK_UPDATE_GOLDEN=1 to create it"
    assert text == path.read_text(encoding="utf-8"), f"{name} differs from the golden file"


@pytest.mark.parametrize("width", WIDTHS)
@pytest.mark.parametrize("case", sorted(CASES))
def test_table_golden(case, width):
    _golden(f"{case}.table.{width}.txt", render(_build(case), "table", width=width, color=False))


@pytest.mark.parametrize("case", MARKDOWN_CASES)
def test_markdown_golden(case):
    _golden(f"{case}.md", render(_build(case), "markdown"))


def _strings(value) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for v in value.values() for s in _strings(v)]
    if isinstance(value, (list, tuple)):
        return [s for v in value for s in _strings(v)]
    return []


def _report_words(report: Report) -> set[str]:
    """Every word of the JSON report's text that the table shows: figures, findings, the sections that
    have a table renderer, the model/data paths and losses."""
    from losscheck.report.json import report_dict
    from losscheck.report.sections import TABLE

    data = report_dict(report)
    # magnitude_kind is shown as the size's unit (+0.1, x1.003, 3 values, floor 0.3), not as a word
    findings = [{k: v for k, v in f.items() if k != "magnitude_kind"} for f in data["findings"]]
    texts = _strings(data.get("figures")) + list(data.get("figures") or {}) + _strings(findings)
    texts += _strings({k: v for k, v in data.items() if k in TABLE}) + _strings(data.get("notes"))
    texts += [data["model"]["path"], *_strings(data["model"].get("losses"))]
    texts += [data["data"]["path"]] if data.get("data") else []
    return {w for t in texts for w in t.split()}


def _headers(report: Report) -> list[str]:
    """Every column header of every FitTable the report renders."""
    from rich.console import Group

    from losscheck.report.layout import FitTable
    from losscheck.report.table import build_renderables

    out: list[str] = []

    def walk(item):
        if isinstance(item, FitTable):
            out.extend(c.header for c in item.cols)
        elif isinstance(item, Group):
            for child in item.renderables:
                walk(child)

    for item in build_renderables(report):
        walk(item)
    return out


@pytest.mark.parametrize("width", (60, *WIDTHS))
@pytest.mark.parametrize("case", sorted(CASES))
def test_table_fits_and_splits_no_word(case, width):
    """At every width: no line is wider than the terminal, every word of the report (any shorter than
    the width) is whole on one line, and every column header is shown."""
    report = dataclasses.replace(_build(case), trace=True)  # every section shown
    text = render(report, "table", width=width, color=False)
    lines = text.splitlines()
    assert max(len(line) for line in lines) <= width
    split = sorted(w for w in _report_words(report) if len(w) <= width and not any(w in line for line in lines))
    assert not split, f"split or lost at {width} columns: {split}\n{text}"
    headers = _headers(report)
    assert headers
    for header in headers:
        for word in header.split():
            assert any(re.search(r"(?<!\S)" + re.escape(word) + r"(?!\S)", line) for line in lines), (header, text)


@pytest.mark.parametrize("case", ["seg_compare", "inspect_full", "per_class"])
def test_wide_tables_stay_short_at_80_columns(case):
    """A wide table splits into parts or stacks instead of squeezing a column to a sliver."""
    text = render(_build(case), "table", width=80, color=False)
    assert len(text.splitlines()) < 90
    assert not re.search(r"^\s*\S\s*$", text, flags=re.M)  # no one-character column


def test_per_class_shows_every_json_column():
    report = per_class_report()
    headers = set(_headers(report))
    from losscheck.report.breakdown import CLASS_FIELDS

    for key in report.sections["per_class"][0]:
        if key in ("output", "kind"):  # the same on every row: in the title
            continue
        assert CLASS_FIELDS[key][0] in headers, key
    text = " ".join(render(report, "table", width=160).split())
    assert "prec." in text and "99%" in text
    assert "Loss per class (output mask, channels)" in text
    md = render(report, "markdown")
    assert "| prec. |" in md or " prec. |" in md


def test_counts_agree_with_their_nouns():
    from losscheck.core.formatting import plural

    assert plural(1, "batch") == "1 batch" and plural(2, "batch") == "2 batches"
    assert plural(1, "sample") == "1 sample" and plural(0, "sample") == "0 samples"
    report = seg_compare_report()
    report.sections["reduction_trace"] = {**SEG_TRACE, "batches": 1}
    report.findings.append(Finding("batchnorm-batch-stats", "two", magnitude=1.0))
    report.findings.append(Finding("batchnorm-batch-stats", "three", magnitude=1.0))
    report.trace = True
    for fmt in ("table", "markdown"):
        text = " ".join(render(report, fmt, width=100).split())
        assert "1 batch;" in text and "1 batches" not in text
        assert "2 warnings" in text and "2 warning," not in text
    assert "1 sample," in " ".join(render(per_sample_report(), "table", width=100).split())


@pytest.mark.parametrize("fmt", OPTION_FORMATS)
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
    assert md[0] == f"### ❌ losscheck compare: {report.summary}"  # the headline heads it
    assert md[2].startswith("FAIL (exit 1): 1 error, 1 warning, 2 info")
    assert "1 at or above --fail-on error" in md[2]
    table = render(report, "table", width=80).rstrip("\n").splitlines()
    assert table[-1].startswith("FAIL (exit 1)")


@pytest.mark.parametrize("fail_on, max_gap, first", [
    ("never", None, "✅ OK (exit 0): 1 error, 1 warning, 2 info; --fail-on never"),
    ("never", 0.5, "✅ OK (exit 0): 1 error, 1 warning, 2 info; --fail-on never; gaps within --max-gap 50%"),
    ("never", 0.05, "❌ FAIL (exit 1): 1 error, 1 warning, 2 info; --fail-on never; "
                    "fit_epoch vs evaluate 13.2% > --max-gap 5%; train_mode vs evaluate 16.4% > --max-gap 5%"),
    ("warning", None, "❌ FAIL (exit 1): 1 error, 1 warning, 2 info; 2 at or above --fail-on warning"),
])
def test_verdict_says_why(fail_on, max_gap, first):
    """The markdown heading is the headline (with the verdict's mark); the verdict is the line after."""
    report = compare_report(fail_on=fail_on, max_gap=max_gap)
    mark, verdict = first.split(" ", 1)
    md = render(report, "markdown").splitlines()
    assert md[0] == f"### {mark} losscheck compare: {report.summary}" and md[2] == verdict


def test_verdict_without_findings():
    md = render(clean_report(), "markdown").splitlines()
    assert md[0].startswith("### ✅ losscheck compare: ") and md[2] == "OK (exit 0): no findings"
    report = compare_report()
    report.findings = [f for f in report.findings if f.severity < Severity.ERROR]
    assert "none at or above --fail-on error" in render(report, "markdown").splitlines()[2]


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
    for fmt in OPTION_FORMATS:
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


def test_no_singular_count_with_a_plural_noun_in_any_golden():
    nouns = "batches|samples|updates|warnings|errors|values|elements|classes|rows|outputs|channels|layers"
    for path in sorted(GOLDEN.iterdir()):
        text = " ".join(path.read_text(encoding="utf-8").split())
        assert not re.search(rf"(?<![\d.])1 ({nouns})\b", text), path.name


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
    report = clean_report()
    report.findings = [Finding(code, f"message for {code}", magnitude=magnitude)]
    assert report.findings[0].to_json()["magnitude_kind"] == CODES[code].magnitude_kind
    table = render(report, "table", width=100, color=False)
    md = render(report, "markdown")
    assert re.search(r"(?<![\w.+])" + re.escape(shown) + r"(?![\w.])", table), table
    assert f"`{code}` ({shown})" in md
    if CODES[code].magnitude_kind == "count":
        assert "+1" not in table and "+3" not in table and "+1" not in md


def test_every_code_has_a_magnitude_kind():
    assert {entry.magnitude_kind for entry in CODES.values()} <= {"gap", "ratio", "count", "floor", None}
    for code in CODES:
        f = Finding(code, "m", magnitude=1.0)
        assert f.to_json()["magnitude_kind"] == CODES[code].magnitude_kind
        assert Finding(code, "m").to_json()["magnitude_kind"] is None


def test_shards_section_renders_in_table_and_markdown():
    report = clean_report()
    report.sections["shards"] = [{"process": 0, "samples": 48, "steps": 3, "loss_sum": 20.5, "weight_sum": 48.0},
                                 {"process": 1, "samples": 48, "steps": 3, "loss_sum": 21.5, "weight_sum": 48.0}]
    table = render(report, "table", width=80)
    assert "Shards (--distribute multi-process" in table and "21.5" in table
    assert "| 1 | 48 | 3 | 21.5 | 48 |" in render(report, "markdown")
