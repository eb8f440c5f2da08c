"""The Python API's surface without TensorFlow: lazy entry points, Report.exit_code, the notebook HTML."""

from __future__ import annotations

import subprocess
import sys

import pytest

from losscheck.core.finding import Finding
from losscheck.core.gate import Gate
from losscheck.report.model import Figure, Report
from tests.conftest import ROOT


def test_import_and_entry_points_stay_tensorflow_free():
    code = ("import sys, losscheck\n"
            "assert callable(losscheck.compare) and callable(losscheck.breakdown) and callable(losscheck.inspect)\n"
            "from losscheck import compare, Report\n"
            "from losscheck.compare import run_compare\n"
            "import losscheck.cli\n"
            "assert callable(losscheck.compare) and losscheck.Report is Report\n"
            "print('tensorflow' in sys.modules, 'keras' in sys.modules)\n")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False False"


def _report(fail_on: str = "error") -> Report:
    report = Report("compare", {"model": {"path": "<in-memory model>", "saved_by": "keras 3"},
                                "data": {"path": "<arrays>", "samples": 4, "batch_size": 2}},
                    gate=Gate(fail_on=fail_on))
    report.figures["evaluate"] = Figure(0.5, "evaluate <b>")
    report.figures["fit_epoch"] = Figure(0.75, "fit & co")
    report.findings = [Finding("dropout", "layer <script>alert(1)</script> & more", magnitude=0.25,
                               subject="drop<1>", advice="a < b")]
    report.sections["decomposition"] = [
        {"name": "gap", "label": "fit_epoch - evaluate", "value": 0.25, "depth": 0, "parent": None, "between": None},
        {"name": "w", "label": "weight <update>", "value": 0.25, "depth": 1, "parent": "gap", "between": None}]
    return report


def test_exit_code_is_a_value_and_a_call():
    assert _report().exit_code == 0 and _report().exit_code() == 0
    assert _report("info").exit_code == 1 and _report("info").exit_code() == 1
    assert _report("info").to_dict()["exit_code"] == 1


def test_html_is_a_readable_escaped_table():
    html = _report()._repr_html_()
    assert "<script>" not in html and "&lt;script&gt;" in html and "drop&lt;1&gt;" in html
    assert "a &lt; b" in html and "evaluate &lt;b&gt;" in html and "fit &amp; co" in html
    assert "&nbsp;&nbsp;weight &lt;update&gt;" in html
    assert html.count("<table") == 3 and "<code>fit_epoch</code>" in html and "+0.25" in html
    assert "{" not in html  # not raw JSON


def test_rich_renderable_and_text_views():
    from rich.console import Console

    report = _report()
    console = Console(width=100, record=True, file=open("/dev/null", "w"))  # noqa: SIM115
    console.print(report)
    assert "fit_epoch" in console.export_text()
    assert report.to_markdown().startswith("### ") and '"schema_version": 1' in report.to_json()


def test_notebook_mimebundle_and_print(capsys):
    """Jupyter gets HTML, markdown and the plain-text table; print(report) is the table, not the repr."""
    report = _report()
    bundle = report._repr_mimebundle_()
    assert set(bundle) == {"text/html", "text/markdown", "text/plain"}
    assert bundle["text/html"] == report._repr_html_()
    assert bundle["text/markdown"] == report.to_markdown() and bundle["text/markdown"].startswith("### ")
    assert bundle["text/plain"] == report.to_table() == str(report)
    assert "fit_epoch" in str(report) and "OK (exit 0)" in str(report) and "Report(" not in str(report)
    assert "\x1b" not in str(report)  # no colour in plain text
    print(report)
    assert capsys.readouterr().out == str(report) + "\n"
    assert set(report._repr_mimebundle_(include=["text/plain"])) == {"text/plain"}
    assert set(report._repr_mimebundle_(exclude={"text/html"})) == {"text/markdown", "text/plain"}
    assert repr(report).startswith("Report(")  # the dataclass repr stays for debugging


def test_text_views_never_carry_control_characters():
    report = _report()
    report.findings[0] = Finding("dropout", "evil \x1b[31mred\x1b]0;title\x07", magnitude=0.25)
    for text in (str(report), report.to_markdown(), report._repr_mimebundle_()["text/plain"]):
        assert "\x1b" not in text and "\x07" not in text


@pytest.mark.parametrize(("kwargs", "words"), [
    ({"validation_data": "a.npz", "validation_split": 0.2}, "cannot be combined"),
    ({"validation_split": 1.0}, "between 0 and 1"),
    ({"validation_split": "0.2"}, "must be a float"),
    ({"history": [1.0, 0.5]}, "history must be a keras History"),
    ({"history": {"loss": "x"}}, "is not a list"),
])
def test_validation_arguments_are_checked_before_anything_loads(tmp_path, kwargs, words):
    import losscheck
    from losscheck.core.errors import UsageError

    with pytest.raises(UsageError, match=words):
        losscheck.compare(tmp_path / "absent.keras", tmp_path / "absent.npz", **kwargs)
