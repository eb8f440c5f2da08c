"""--format github: every line is a GitHub Actions workflow command (an annotation) with GitHub's
escaping, at most 10 of a kind, and the verdict; on real fixtures with error, warning and info
findings, together with --output files in their own formats."""

from __future__ import annotations

import re

import pytest

from losscheck.core.finding import Finding
from losscheck.core.gate import Gate
from losscheck.report.formats import render
from losscheck.report.github import ANNOTATIONS_PER_KIND, escape_data, escape_property
from tests.conftest import fixture_files, run_cli
from tests.test_report_render import clean_report, compare_report, inspect_report

KINDS = {"error": "error", "warning": "warning", "info": "notice"}
PROPERTY = r"(?:title|file|line|endLine|col|endColumn)=(?:[^%:,\r\n]|%25|%0D|%0A|%3A|%2C)*"
#: `::kind prop=value,prop=value::message`, the message escaped as data, the values as properties
COMMAND = re.compile(rf"^::(?P<kind>error|warning|notice)(?: (?P<props>{PROPERTY}(?:,{PROPERTY})*))?"
                     r"::(?P<message>(?:[^%\r\n]|%25|%0D|%0A)*)$")


def unescape(text: str) -> str:
    for escaped, char in (("%0D", "\r"), ("%0A", "\n"), ("%3A", ":"), ("%2C", ","), ("%25", "%")):
        text = text.replace(escaped, char)
    return text


def parse(output: str) -> list[dict]:
    """Each line as {kind, title, message}; fails on a line that is not a well-formed workflow command."""
    assert output.endswith("\n") and "\r" not in output
    out = []
    for line in output.splitlines():
        match = COMMAND.match(line)
        assert match, f"not a workflow command: {line!r}"
        props = dict(p.split("=", 1) for p in (match["props"] or "").split(",") if p)
        out.append({"kind": match["kind"], "title": unescape(props.get("title", "")),
                    "message": unescape(match["message"])})
    return out


def test_escaping_follows_github():
    assert escape_data("50%\r\nnext: a, b") == "50%25%0D%0Anext: a, b"
    assert escape_property("a: b, 5%\n") == "a%3A b%2C 5%25%0A"
    assert unescape(escape_property("x%0A: y")) == "x%0A: y"  # a literal %0A survives the round trip


@pytest.mark.parametrize("factory", [compare_report, inspect_report, clean_report])
def test_one_annotation_per_finding_then_the_verdict(factory):
    report = factory()
    lines = parse(render(report, "github"))
    *found, last = lines
    assert [(d["kind"], d["title"]) for d in found] == [
        (KINDS[str(f.severity)], f.code) for s in ("error", "warning", "info")
        for f in report.findings if str(f.severity) == s]
    for d, f in zip(found, sorted(report.findings, key=lambda f: -f.severity), strict=True):
        assert d["message"].startswith(f.message.strip())
        if f.advice:
            assert d["message"].endswith("→ " + f.advice.strip())
    assert last["title"] == f"losscheck {report.command}"
    assert last["kind"] == ("error" if report.exit_code() else "notice")
    assert "exit " + str(report.exit_code()) in last["message"]


def test_messages_with_newlines_percent_and_separators_stay_one_line():
    report = clean_report()
    report.findings = [Finding("dropout", "100% of it:\nsecond, line :: here", subject="a,b:c",
                               advice="50%0A literal"),
                       Finding("mask", "carriage\rreturn")]
    [annotation, cr, _] = parse(render(report, "github"))  # parse: no raw CR or LF inside a line
    assert annotation["message"].startswith("100% of it:\nsecond, line :: here\n")
    assert "subject a,b:c" in annotation["message"] and annotation["message"].endswith("→ 50%0A literal")
    assert cr["message"].startswith("carriage") and "\r" not in cr["message"]  # shown as an escape


def test_control_characters_never_reach_the_log():
    report = clean_report()
    report.findings = [Finding("dropout", "evil \x1b[31mred\x1b]0;title\x07 \u202e")]
    text = render(report, "github")
    assert "\x1b" not in text and "\x07" not in text and "\u202e" not in text
    parse(text)


def test_at_most_ten_annotations_of_a_kind():
    report = Gate(fail_on="error").apply(clean_report())
    report.findings = ([Finding("unexplained", f"error {i}", magnitude=0.1) for i in range(3)]
                       + [Finding("partial-batch", f"warning {i}") for i in range(25)]
                       + [Finding("dropout", f"info {i}") for i in range(ANNOTATIONS_PER_KIND)]
                       + [Finding("mask", "info mask")])
    lines = parse(render(report, "github"))
    kinds = [d["kind"] for d in lines]
    assert all(kinds.count(k) <= ANNOTATIONS_PER_KIND for k in KINDS.values())
    warnings = [d for d in lines if d["kind"] == "warning"]
    assert [d["message"].split("\n")[0] for d in warnings[:-1]] == [f"warning {i}" for i in range(9)]
    assert warnings[-1]["message"].startswith("16 more warning findings not annotated")
    assert "partial-batch ×16" in warnings[-1]["message"]
    notices = [d for d in lines if d["kind"] == "notice"]
    assert len(notices) == ANNOTATIONS_PER_KIND and notices[-1]["message"].startswith("2 more info findings")
    assert "dropout, mask" in notices[-1]["message"]
    assert kinds.count("error") == 4 and lines[-1]["title"] == "losscheck compare"  # 3 errors and the verdict
    # a passing run: the verdict is a notice and takes one of the ten
    report.gate = Gate(fail_on="never")
    lines = parse(render(report, "github"))
    notices = [d for d in lines if d["kind"] == "notice"]
    assert len(notices) == ANNOTATIONS_PER_KIND and notices[-2]["message"].startswith("3 more info findings")
    assert "OK (exit 0)" in notices[-1]["message"]


@pytest.fixture(scope="module")
def github_runs(tmp_path_factory):
    """compare --format github on fixtures whose findings have every severity, with a JSON, a markdown
    and an HTML --output in the same run."""
    runs = {}
    for name in ("nan_inputs", "bn_classifier"):  # error + info; warning + info
        out = tmp_path_factory.mktemp(name)
        model, data = fixture_files(name)
        result = run_cli("compare", model, data, "--format", "github", "--output", out / "report.json",
                         "--output", out / "summary.md", "--output", out / "report.html")
        runs[name] = (result, out)
    return runs


@pytest.mark.keras
def test_compare_github_annotations_on_fixtures(github_runs):
    import json

    from tests.test_report_schema import validate

    kinds = set()
    for name, (result, out) in github_runs.items():
        assert result.code in (0, 1), result.stderr
        doc = json.loads((out / "report.json").read_text())
        validate(doc)
        assert result.code == doc["exit_code"]
        lines = parse(result.stdout)
        *found, last = lines
        order = {"error": 0, "warning": 1, "info": 2}
        expected = sorted(doc["findings"], key=lambda f: order[f["severity"]])
        assert [(d["kind"], d["title"]) for d in found] == [(KINDS[f["severity"]], f["code"]) for f in expected]
        for d, f in zip(found, expected, strict=True):
            assert d["message"].startswith(f["message"].strip())
        assert last["kind"] == ("error" if result.code else "notice") and f"(exit {result.code})" in last["message"]
        assert str(fixture_files(name)[0]) in last["message"]
        kinds |= {d["kind"] for d in found}
        # the other outputs are their own formats, written in the same run
        assert (out / "summary.md").read_text().startswith("### ")
        assert (out / "report.html").read_text().lstrip().lower().startswith("<!doctype html")
        assert "losscheck: wrote" in result.stderr
    assert kinds == {"error", "warning", "notice"}


@pytest.mark.keras
def test_github_alone_writes_only_annotations(github_runs):
    model, data = fixture_files("nan_inputs")
    result = run_cli("compare", model, data, "--format", "github")
    assert result.code == github_runs["nan_inputs"][0].code == 1
    assert result.stdout == github_runs["nan_inputs"][0].stdout
    assert "wrote" not in result.stderr


def test_github_with_outputs_needs_no_other_format(tmp_path):
    """--format github with --output report.txt: the annotations on stdout, the table in the file (no
    usage error, as --format json with only a .txt output gets)."""
    from losscheck.cli import _output_format

    for suffix, fmt in ((".json", "json"), (".md", "markdown"), (".html", "html"), (".svg", "svg"),
                        (".txt", "table")):
        assert _output_format(tmp_path / f"r{suffix}", "github", True) == fmt
