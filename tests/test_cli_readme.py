"""The docs' GitHub Actions job (docs/ci.md) is valid YAML, runs `losscheck compare` with documented
options that the CLI accepts, publishes the HTML report and the summary whatever the outcome, and lets
the exit code fail the job, annotating the run (--format github). The JSON-schema page (docs/json.md)
names the shipped schema."""

from __future__ import annotations

import re
import shlex

import pytest

from tests.conftest import ROOT

yaml = pytest.importorskip("yaml")

DOCS = ROOT / "docs"
CI_PAGE = (DOCS / "ci.md").read_text(encoding="utf-8")


def section(title: str) -> str:
    match = re.search(rf"^## {re.escape(title)}\n(.*?)(?=^## |\Z)", CI_PAGE, flags=re.M | re.S)
    assert match, f"docs/ci.md has no '## {title}' section"
    return match.group(1)


def workflow() -> dict:
    blocks = re.findall(r"```yaml\n(.*?)```", section("CI gate (GitHub Actions)"), flags=re.S)
    assert len(blocks) == 1
    return yaml.safe_load(blocks[0])


def steps() -> list[dict]:
    jobs = workflow()["jobs"]
    assert len(jobs) == 1
    return next(iter(jobs.values()))["steps"]


def compare_step() -> dict:
    found = [s for s in steps() if "losscheck compare" in s.get("run", "")]
    assert len(found) == 1
    return found[0]


def compare_args() -> list[str]:
    args = shlex.split(compare_step()["run"])
    assert args[:2] == ["losscheck", "compare"]
    return args[2:]


def option_values(args: list[str], name: str) -> list[str]:
    return [args[i + 1] for i, a in enumerate(args) if a == name]


def test_workflow_is_valid_yaml_with_a_job():
    wf = workflow()
    assert wf["name"] and wf["jobs"]
    trigger = wf.get("on", wf.get(True))  # YAML 1.1 reads a bare `on` as true
    assert trigger
    job = next(iter(wf["jobs"].values()))
    assert job["runs-on"] and all(isinstance(s, dict) for s in job["steps"])
    for step in job["steps"]:
        assert ("uses" in step) != ("run" in step), step  # each step either uses an action or runs


def test_workflow_installs_losscheck_before_running_it():
    names = [s.get("run", "") for s in steps()]
    install = next(i for i, run in enumerate(names) if re.search(r"pip install .*losscheck", run))
    assert install < steps().index(compare_step())


def test_compare_uses_only_documented_options_the_cli_accepts():
    from click.testing import CliRunner

    from losscheck.cli import main

    args = compare_args()
    help_text = CliRunner().invoke(main, ["compare", "--help"]).output
    documented = set(re.findall(r"^\| `(--[a-z-]+)", (DOCS / "options.md").read_text(encoding="utf-8"), flags=re.M))
    options = [a for a in args if a.startswith("--")]
    assert options
    for option in options:
        assert option in help_text, f"{option} is not an option of losscheck compare"
        assert option in documented, f"{option} is not in the options table (docs/options.md)"
    # click parses the command line as given (choices, numbers), without running anything
    ctx = main.commands["compare"].make_context("compare", list(args))
    assert ctx.params["fail_on"] in ("info", "warning", "error")
    assert ctx.params["max_gap"] is not None


def test_the_job_fails_on_findings():
    step = compare_step()
    assert not step.get("continue-on-error"), "the compare step must fail the job"
    assert "|| true" not in step["run"] and "; exit 0" not in step["run"]
    assert option_values(compare_args(), "--fail-on") != ["never"]


def test_the_html_report_and_summary_are_published_whatever_the_outcome():
    args = compare_args()
    outputs = option_values(args, "--output")
    html = [o for o in outputs if o.endswith(".html")]
    summary = [o for o in outputs if o.endswith(".md")]
    assert html and summary and option_values(args, "--format") == ["github"]
    from pathlib import Path

    from losscheck.cli import _output_format

    assert _output_format(Path(summary[0]), "github", True) == "markdown"  # the summary is markdown
    upload = next(s for s in steps() if s.get("uses", "").startswith("actions/upload-artifact@"))
    assert "always()" in upload.get("if", "")
    assert html[0] in upload["with"]["path"]
    summary_step = next(s for s in steps() if "$GITHUB_STEP_SUMMARY" in s.get("run", ""))
    assert "always()" in summary_step.get("if", "") and summary[0] in summary_step["run"]
    index = steps().index
    assert index(compare_step()) < index(upload) and index(compare_step()) < index(summary_step)


def test_the_model_and_data_come_from_an_artifact():
    download = next(s for s in steps() if s.get("uses", "").startswith("actions/download-artifact@"))
    folder = download["with"]["path"]
    model, data = compare_args()[:2]
    assert model.startswith(folder + "/") and data.startswith(folder + "/")
    assert model.endswith((".keras", ".h5")) and data.endswith((".npz", ".h5", ".hdf5"))


def test_json_schema_page_names_the_shipped_schema():
    text = (DOCS / "json.md").read_text(encoding="utf-8")
    assert "losscheck/schema/report.schema.json" in text
    assert (ROOT / "losscheck" / "schema" / "report.schema.json").is_file()
    from losscheck.report.json import load_schema

    schema = load_schema()
    fields = set(re.findall(r"^\| `([a-z_]+)`", text, flags=re.M))
    assert set(schema["required"]) <= fields | {"losscheck_version", "keras_version", "backend"}
    assert "gate" in fields and "gate" in schema["properties"]
