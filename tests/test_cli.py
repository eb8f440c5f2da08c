"""The CLI's gate, options and output on hand-built reports: the core (run_compare / run_inspect /
run_breakdown) is replaced by a stub returning a Report, so no TensorFlow is loaded and each test
takes milliseconds. The same exit-code paths run on real fixtures in tests/test_cli_keras.py."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from click.testing import CliRunner

from losscheck.core.errors import DataFileError, ModelFileError
from losscheck.core.finding import Finding
from tests.conftest import ROOT, CliResult
from tests.test_report_render import clean_report, compare_report, inspect_report

# compare_report(): 1 error (unexplained), 1 warning (batchnorm-batch-stats), 2 info (dropout,
# probability-clipping); fit_epoch vs evaluate 13.2%, train_mode vs evaluate 16.4%.


class Stub:
    """Stands in for a run_* function: records the Config, reports two progress stages."""

    def __init__(self, make=compare_report, error: Exception | None = None) -> None:
        self.make, self.error, self.cfg, self.calls = make, error, None, 0

    def __call__(self, cfg, *args) -> object:
        self.calls += 1
        self.cfg = cfg
        progress = args[-1]
        progress("loading the model")
        progress("one-epoch fit on a throwaway copy", total=3)
        for _ in range(3):
            progress.advance()
        if self.error is not None:
            raise self.error
        return self.make()


@pytest.fixture
def stub(monkeypatch, tmp_path):
    """The stubbed core, run in a folder holding (empty) model.keras and data.npz: the CLI checks that
    its inputs exist before it calls the core."""
    import losscheck.commands.breakdown
    import losscheck.commands.compare
    import losscheck.commands.inspect

    stubs = {"compare": Stub(), "inspect": Stub(inspect_report), "breakdown": Stub()}
    monkeypatch.setattr(losscheck.commands.compare, "run_compare", stubs["compare"])
    monkeypatch.setattr(losscheck.commands.inspect, "run_inspect", stubs["inspect"])
    monkeypatch.setattr(losscheck.commands.breakdown, "run_breakdown", stubs["breakdown"])
    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.delenv("COLUMNS", raising=False)
    monkeypatch.delenv("KERAS_BACKEND", raising=False)
    monkeypatch.chdir(tmp_path)
    for name in ("model.keras", "data.npz", "m.keras", "d.npz"):
        (tmp_path / name).write_bytes(b"PK placeholder")
    return stubs


def cli(*args: str, env: dict | None = None) -> CliResult:
    from losscheck.cli import main

    result = CliRunner().invoke(main, [str(a) for a in args], env=env, catch_exceptions=False)
    return CliResult(result.exit_code, result.stdout, result.stderr)


def compare(*options: str, env: dict | None = None) -> CliResult:
    return cli("compare", "model.keras", "data.npz", *options, env=env)


# --- exit codes -----------------------------------------------------------------------------------

@pytest.mark.parametrize("options, code", [
    ((), 1),                                            # an error finding, default --fail-on error
    (("--fail-on", "error"), 1),
    (("--fail-on", "warning"), 1),
    (("--fail-on", "info"), 1),
    (("--fail-on", "never"), 0),
    (("--ignore", "unexplained"), 0),                   # warning + info left, --fail-on error
    (("--ignore", "unexplained", "--fail-on", "warning"), 1),
    (("--ignore", "unexplained,batchnorm-batch-stats", "--fail-on", "warning"), 0),
    (("--ignore", " unexplained , batchnorm-batch-stats ", "--fail-on", "warning"), 0),
    (("--select", "dropout"), 0),
    (("--select", "dropout", "--fail-on", "info"), 1),
    (("--select", "dropout,unexplained"), 1),
    (("--select", "dropout,unexplained", "--ignore", "unexplained"), 0),
    (("--select", "mask", "--fail-on", "info"), 0),     # a known code with no finding
    (("--fail-on", "never", "--max-gap", "0.2"), 0),    # 13.2% and 16.4% within 20%
    (("--fail-on", "never", "--max-gap", "0.15"), 1),   # train_mode 16.4% > 15%
    (("--fail-on", "never", "--max-gap", "0.05"), 1),
    (("--ignore", "unexplained", "--max-gap", "0.01"), 1),  # whatever the cause: no finding needed
    (("--fail-on", "never", "--max-gap", "0"), 1),
])
def test_exit_code(stub, options, code):
    result = compare(*options)
    assert result.code == code, result.stderr
    assert result.stderr == ""
    doc = compare(*options, "--format", "json").json
    assert doc["exit_code"] == code


def test_select_and_ignore_filter_the_report(stub):
    doc = compare("--format", "json", "--select", "dropout,unexplained", "--ignore", "unexplained").json
    assert [f["code"] for f in doc["findings"]] == ["dropout"]
    doc = compare("--format", "json", "--fail-on", "warning").json
    assert doc["gate"]["failing"] == ["unexplained", "batchnorm-batch-stats"]
    assert not hasattr(stub["compare"].cfg, "fail_on")  # the gate is the CLI's: the core never sees it


def test_max_gap_breaches_are_reported(stub):
    doc = compare("--format", "json", "--fail-on", "never", "--max-gap", "0.15").json
    assert doc["gate"]["max_gap"] == 0.15
    assert [b["figure"] for b in doc["gate"]["max_gap_breaches"]] == ["train_mode"]
    assert doc["gate"]["max_gap_breaches"][0]["gap"] == pytest.approx((8.0138521 - 6.8853313) / 6.8853313)
    md = compare("--format", "markdown", "--fail-on", "never", "--max-gap", "0.15").stdout
    assert md.splitlines()[2].endswith("train_mode vs evaluate 16.4% > --max-gap 15%")


def test_max_gap_without_evaluate_does_not_fail(stub):
    def no_evaluate():
        r = clean_report()
        del r.figures["evaluate"]
        return r

    stub["compare"].make = no_evaluate
    assert compare("--max-gap", "0").code == 0


@pytest.mark.parametrize("options, message", [
    (("--select", "dropout,nope"), "--select: unknown finding code(s) nope"),
    (("--ignore", "Dropout"), "--ignore: unknown finding code(s) Dropout"),
])
def test_unknown_code_exits_2_before_loading(stub, options, message):
    result = compare(*options)
    assert result.code == 2
    assert result.stdout == ""
    assert result.stderr.startswith(f"losscheck: error: {message}; known: weight-update, dropout")
    assert len(result.stderr.strip().splitlines()) == 1
    assert stub["compare"].calls == 0


@pytest.mark.parametrize("options", [
    ("--fail-on", "fatal"),
    ("--max-gap", "-0.1"),
    ("--max-gap", "ten"),
    ("--format", "yaml"),
    ("--no-such-option",),
    ("--batch-size", "0"),
])
def test_bad_option_exits_2(stub, options):
    result = compare(*options)
    assert result.code == 2
    assert result.stdout == ""
    lines = result.stderr.splitlines()  # one line naming the option, not click's Usage/Try/Error block
    assert len(lines) == 1 and lines[0].startswith("losscheck: error: ")
    assert options[0] in lines[0] and "Usage:" not in result.stderr
    assert stub["compare"].calls == 0


def test_breakdown_needs_a_mode_and_inspect_has_no_max_gap(stub):
    result = cli("breakdown", "model.keras", "data.npz")
    assert result.code == 2
    assert "one of --per-class, --per-output or --per-sample" in result.stderr
    assert cli("inspect", "model.keras", "--max-gap", "0.1").code == 2


@pytest.mark.parametrize("error, line", [
    (ModelFileError("model.keras", "model file not found", "check the path"),
     "losscheck: error: model.keras: model file not found; check the path"),
    (DataFileError("data.npz", "no array 'y'", "expected x, y"),
     "losscheck: error: data.npz: no array 'y'; expected x, y"),
])
def test_input_errors_exit_2_with_one_line(stub, error, line):
    stub["compare"].error = error
    result = compare()
    assert (result.code, result.stdout, result.stderr) == (2, "", line + "\n")


def test_internal_error_exits_2_with_one_line_and_traceback_with_debug(stub):
    stub["compare"].error = RuntimeError("boom\nsecond line")
    result = compare()
    assert result.code == 2
    assert result.stderr.splitlines() == ["losscheck: internal error: RuntimeError: boom (rerun with --debug for "
                                          "the traceback and please report it)"]
    result = compare("--debug")
    assert result.code == 2 and "Traceback" in result.stderr


# --- output ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("command", [("compare", "m.keras", "d.npz"), ("inspect", "m.keras"),
                                     ("breakdown", "m.keras", "d.npz", "--per-class")])
@pytest.mark.parametrize("fmt", ["table", "json", "markdown"])
def test_every_command_renders_every_format(stub, command, fmt):
    result = cli(*command, "--format", fmt, "--fail-on", "never")
    assert result.code == 0, result.stderr
    assert result.stdout.strip()
    if fmt == "json":
        assert result.json["schema_version"] == 1
    if fmt == "markdown":
        assert result.stdout.startswith("### ✅ losscheck ")


def test_output_writes_files_by_suffix(stub, tmp_path):
    html, svg, md = tmp_path / "report.html", tmp_path / "report.svg", tmp_path / "summary.md"
    result = compare("--format", "markdown", "--output", html, "--output", svg, "--output", md)
    assert result.code == 1 and result.stdout == ""
    assert result.stderr == (f"losscheck: wrote {html}, {svg}, {md}: FAIL (exit 1): 1 error, 1 warning, 2 info; "
                             "1 at or above --fail-on error\n")  # the CI log says why the job failed
    assert html.read_text().startswith("<!DOCTYPE html>") and "batchnorm-batch-stats" in html.read_text()
    assert "<svg" in svg.read_text()
    assert md.read_text().startswith("### ❌ losscheck compare: Fit reports")
    assert md.read_text().splitlines()[2].startswith("FAIL (exit 1)")


def test_output_format_follows_the_suffix_unless_format_is_given(stub, tmp_path):
    md, js, txt = tmp_path / "a.md", tmp_path / "a.json", tmp_path / "a.txt"
    assert compare("--output", md, "--output", js, "--output", txt).code == 1
    assert md.read_text().startswith("### ❌ losscheck compare")
    assert json.loads(js.read_text())["exit_code"] == 1
    assert "\n\nlosscheck compare\nmodel fixtures/" in txt.read_text()  # table, the default
    assert compare("--format", "table", "--output", md).code == 1
    assert "\n\nlosscheck compare\nmodel fixtures/" in md.read_text()  # an explicit --format wins
    assert md.read_text().startswith("Fit reports")  # the table's headline


def test_output_json(stub, tmp_path):
    out = tmp_path / "report.json"
    result = compare("--format", "json", "--output", out, "--fail-on", "never")
    assert result.code == 0 and result.stdout == ""
    assert json.loads(out.read_text())["exit_code"] == 0


@pytest.mark.parametrize("name", ["no-such-dir/report.html", "no-such-dir/report.json"])
def test_output_into_a_missing_folder_exits_2_before_loading(stub, tmp_path, name):
    result = compare("--output", tmp_path / name)
    assert result.code == 2 and "does not exist" in result.stderr
    assert stub["compare"].calls == 0


def test_html_output_with_an_explicit_other_format_exits_2(stub, tmp_path):
    result = compare("--format", "json", "--output", tmp_path / "r.html")
    assert result.code == 2 and "writes the rendered table, not --format json" in result.stderr
    assert compare("--format", "table", "--output", tmp_path / "r.html").code == 1  # explicit table is fine
    assert compare("--format", "json", "--output", tmp_path / "r.html", "--output", tmp_path / "r.json").code == 1
    result = compare("--format", "markdown", "--output", tmp_path / "r.svg", "--output", tmp_path / "r.json")
    assert result.code == 1 and (tmp_path / "r.json").read_text().startswith("### ")  # --format markdown wins


def test_unwritable_output_exits_2(stub, tmp_path):
    target = tmp_path / "dir.json"
    target.mkdir()
    result = compare("--format", "json", "--output", target)
    assert result.code == 2


# --- colour, width, progress ----------------------------------------------------------------------

@pytest.fixture
def terminal(monkeypatch):
    """Pretend stdout and stderr are terminals."""
    import losscheck.cli.output

    monkeypatch.setattr(losscheck.cli.output, "_stdout_tty", lambda: True)
    monkeypatch.setattr(losscheck.cli.output, "_stderr_tty", lambda: True)
    monkeypatch.setenv("COLUMNS", "80")


def test_colour_on_a_terminal_only(stub):
    assert "\x1b[" not in compare().stdout  # CliRunner's stdout is not a terminal


def test_colour_on_a_terminal_unless_no_color(stub, terminal):
    assert "\x1b[" in compare().stdout
    assert "\x1b[" not in compare("--no-color").stdout
    assert "\x1b[" not in compare(env={"NO_COLOR": "1"}).stdout


def test_no_color_applies_to_html_export(stub, tmp_path):
    from rich.terminal_theme import DEFAULT_TERMINAL_THEME as theme

    red = theme.ansi_colors[1].hex
    compare("--output", tmp_path / "a.html")
    compare("--output", tmp_path / "b.html", "--no-color")
    compare("--output", tmp_path / "c.html", env={"NO_COLOR": "1"})
    assert red in (tmp_path / "a.html").read_text()
    assert red not in (tmp_path / "b.html").read_text() and red not in (tmp_path / "c.html").read_text()


def test_table_fits_80_columns_without_cutting(stub, terminal):
    out = compare("--no-color").stdout
    assert max(len(line) for line in out.splitlines()) <= 80
    assert "…" not in out
    assert "batchnorm-batch-stats" in out and "train_mode_batchnorm_only" in out


def test_table_width_is_fixed_off_a_terminal(stub):
    out = compare().stdout
    assert max(len(line) for line in out.splitlines()) == 100


def test_progress_is_silent_when_stderr_is_not_a_terminal(stub):
    result = compare()
    assert stub["compare"].calls == 1
    assert result.stderr == ""


def test_progress_shows_each_stage_on_stderr_of_a_terminal(stub, terminal):
    result = compare("--no-color")
    assert "loading the model" in result.stderr and "one-epoch fit on a throwaway copy" in result.stderr
    assert "100%" in result.stderr and "\x1b[" in result.stderr  # a live bar on the terminal
    assert "loading the model" not in result.stdout
    assert result.stdout.startswith("Fit reports") and "\nlosscheck compare\n" in result.stdout


def test_progress_bar_protocol():
    """progress("msg") starts a stage; total= and advance() draw a bar; close() finishes it."""
    import io

    from rich.console import Console

    from losscheck.cli import StderrProgress

    buf = io.StringIO()
    progress = StderrProgress(Console(file=buf, force_terminal=True, width=80, no_color=True))
    progress("inference pass")
    progress("fit", total=4)
    for _ in range(4):
        progress.advance()
    progress.close()
    text = buf.getvalue()
    assert "inference pass" in text and "fit" in text and "100%" in text
    progress.close()  # idempotent


def test_silent_progress_takes_the_same_calls():
    from losscheck.cli import SilentProgress

    silent = SilentProgress()
    silent("fit", total=3)
    silent.advance()
    assert callable(silent)


# --- startup --------------------------------------------------------------------------------------

def test_importing_the_cli_loads_no_heavy_module():
    code = ("import sys, losscheck, losscheck.cli, losscheck.report.model; "
            "print(sorted(m for m in ('tensorflow', 'keras', 'numpy', 'rich', 'h5py') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert out.stdout.strip() == "[]"


def _best_cpu_time(args: list[str], runs: int = 3) -> float:
    """CPU seconds (user + system) of the fastest of `runs` runs: unlike wall time, it does not grow
    when other processes share the machine."""
    import resource

    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    best = float("inf")
    for _ in range(runs):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        out = subprocess.run(args, capture_output=True, text=True, cwd=ROOT, env=env)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        assert out.returncode == 0, out.stderr
        best = min(best, after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
    return best


@pytest.mark.parametrize("flag", ["--help", "--version"])
def test_help_and_version_are_fast(flag):
    seconds = _best_cpu_time([sys.executable, "-m", "losscheck", flag])
    assert seconds < 0.3, f"losscheck {flag} took {seconds:.2f} s of CPU"


def test_help_documents_the_gate_options():
    text = cli("compare", "--help").stdout
    for option in ("--fail-on", "--select", "--ignore", "--max-gap", "--output", "--no-color", "--format"):
        assert option in text
    assert "Exit codes: 0" in cli("--help").stdout


def test_findings_registry_codes_are_accepted(stub):
    from losscheck.core.codes import CODES

    assert compare("--select", ",".join(CODES), "--fail-on", "never").code == 0
    stub["compare"].make = lambda: _with(Finding("mask", "m"))
    assert compare("--fail-on", "info", "--ignore", "mask").code == 0


def _with(finding: Finding):
    r = clean_report()
    r.findings = [finding]
    return r
