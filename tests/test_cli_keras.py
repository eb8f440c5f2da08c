"""The CLI on real fixtures (loads TensorFlow): every exit-code path end to end, and every command's
--format json output validated against the shipped JSON Schema. Each CLI run reuses the session's
TensorFlow; the fixtures are the small committed ones (about a second per compare)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.conftest import FIXTURES, ROOT, fixture_files, run_cli
from tests.test_report_schema import validate

pytestmark = pytest.mark.keras


def compare(name: str, *options: str, fmt: str = "json"):
    model, data = fixture_files(name)
    result = run_cli("compare", model, data, "--format", fmt, *options)
    if fmt == "json" and result.code in (0, 1):
        doc = result.json
        validate(doc)
        assert doc["exit_code"] == result.code
    return result


def codes(result) -> list[str]:
    return [f["code"] for f in result.json["findings"]]


# --- exit codes on real models --------------------------------------------------------------------
# gaussian_noise: weight-update (info) + noise-layer (info); softmax_from_logits: from-logits-mismatch
# (error); bn_shift: batchnorm-batch-stats (warning); frozen_bn_dropout: fit_epoch 13% and train_mode
# 16% above evaluate.

def test_info_findings_pass_by_default_and_fail_with_fail_on_info():
    result = compare("gaussian_noise")
    assert result.code == 0 and "noise-layer" in codes(result)
    assert compare("gaussian_noise", "--fail-on", "info").code == 1


def test_select_and_ignore_on_a_real_report():
    result = compare("gaussian_noise", "--select", "noise-layer", "--fail-on", "info")
    assert (result.code, codes(result)) == (1, ["noise-layer"])
    result = compare("gaussian_noise", "--ignore", "weight-update,noise-layer", "--fail-on", "info")
    assert (result.code, codes(result)) == (0, [])


def test_warning_fails_with_fail_on_warning():
    result = compare("bn_shift", "--fail-on", "warning")
    assert result.code == 1 and result.json["gate"]["failing"] == ["batchnorm-batch-stats"]


def test_error_finding_fails_by_default_unless_never_or_ignored():
    assert compare("softmax_from_logits").code == 1
    assert compare("softmax_from_logits", "--fail-on", "never").code == 0
    assert compare("softmax_from_logits", "--ignore", "from-logits-mismatch").code == 0


def test_max_gap(tmp_path):
    html, md = tmp_path / "report.html", tmp_path / "summary.md"
    result = compare("frozen_bn_dropout", "--max-gap", "0.05", "--output", html, "--output", md, fmt="markdown")
    assert result.code == 1 and result.stdout == ""
    lines = md.read_text().splitlines()
    assert lines[0].startswith("### ❌ losscheck compare: Fit reports ")  # the headline
    assert lines[2].startswith("FAIL (exit 1)") and "> --max-gap 5%" in lines[2]
    assert "<!DOCTYPE html>" in html.read_text() and "fit_epoch" in html.read_text()
    result = compare("frozen_bn_dropout", "--max-gap", "0.5")
    assert result.code == 0 and result.json["gate"]["max_gap_breaches"] == []


@pytest.mark.parametrize("which", ["model", "data"])
def test_missing_file_exits_2(tmp_path, which):
    model, data = fixture_files("gaussian_noise")
    args = (tmp_path / "missing.keras", data) if which == "model" else (model, tmp_path / "missing.npz")
    result = run_cli("compare", *args)
    assert result.code == 2 and result.stdout == ""
    assert result.stderr.startswith("losscheck: error: ") and "missing." in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_a_real_process_exits_2_on_an_unknown_code():
    model, data = fixture_files("gaussian_noise")
    out = subprocess.run([sys.executable, "-m", "losscheck", "compare", str(model), str(data), "--ignore", "bogus"],
                         capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert out.returncode == 2 and out.stdout == ""
    assert out.stderr.startswith("losscheck: error: --ignore: unknown finding code(s) bogus")


# --- every command's JSON validates against the schema ---------------------------------------------

@pytest.mark.parametrize("name, options", [
    ("two_outputs", ()),
    ("sample_weights", ()),
    ("tfkeras_h5", ()),
    ("nan_inputs", ()),
    ("bn_classifier", ("--probe-samples", "32", "--class-weight", '{"0": 1, "1": 3}')),
])
def test_compare_json_validates(name, options):
    result = compare(name, *options)
    assert result.code in (0, 1), result.stderr
    if "--probe-samples" in options:
        assert result.json["figures"]["train_mode"]["samples"] == 32


@pytest.mark.parametrize("name, mode", [("two_outputs", "--per-class"), ("two_outputs", "--per-output"),
                                        ("two_outputs", "--per-sample"), ("softmax_rare", "--per-class")])
def test_breakdown_json_validates(name, mode):
    model, data = fixture_files(name)
    result = run_cli("breakdown", model, data, mode, "--format", "json")
    if result.code == 2 and "not implemented" in result.stderr:
        pytest.skip(result.stderr.strip())
    assert result.code in (0, 1), result.stderr
    doc = result.json
    validate(doc)
    assert doc["command"] == "breakdown" and mode[2:].replace("-", "_") in doc


def test_inspect_json_validates_on_every_fixture():
    checked = 0
    for d in sorted(p for p in FIXTURES.iterdir() if p.is_dir()):
        models = [p for p in d.iterdir() if p.name.startswith("model.")]
        if not models:
            continue
        result = run_cli("inspect", models[0], "--format", "json")
        if result.code == 2:  # e.g. a custom loss that needs --custom-objects: one line, no report
            assert result.stdout == "" and len(result.stderr.strip().splitlines()) == 1, d.name
            continue
        validate(result.json)
        assert result.json["command"] == "inspect" and result.json["exit_code"] == result.code
        checked += 1
    assert checked >= 5


@pytest.mark.parametrize("name, words", [("two_outputs", "not supported for multi-output models"),
                                         ("sample_weights", "cannot be combined with sample_weight")])
def test_class_weight_usage_errors_come_before_any_pass(monkeypatch, name, words):
    """--class-weight on a multi-output model, or beside the data's sample weights: exit 2 with one
    line, found right after loading (no inference pass has run)."""
    from losscheck.probes.prober import Prober

    passes: list[int] = []
    real = Prober.inference_pass

    def counted(self, *args, **kwargs):
        passes.append(1)
        return real(self, *args, **kwargs)

    monkeypatch.setattr(Prober, "inference_pass", counted)
    result = compare(name, "--class-weight", '{"0": 1, "1": 2}')
    assert result.code == 2 and words in result.stderr, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert passes == []
