"""The pre-commit hook (.pre-commit-hooks.yaml): its entry runs as pre-commit runs it (the entry
command with the staged file names appended, in a subprocess), one report per model, and its exit
code is the gate; losscheck-inspect's own usage errors are one line."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT, fixture_files, run_cli

yaml = pytest.importorskip("yaml")


def hook() -> dict:
    hooks = yaml.safe_load((ROOT / ".pre-commit-hooks.yaml").read_text(encoding="utf-8"))
    [found] = [h for h in hooks if h["id"] == "losscheck-inspect"]
    return found


def test_hook_declares_what_pre_commit_needs():
    h = hook()
    assert h["language"] == "python" and h["name"] and h["description"]
    assert h.get("require_serial") is True  # one process: TensorFlow imported once for all files
    files = re.compile(h["files"])
    assert all(files.search(p) for p in ("model.keras", "a/b/model.h5"))
    assert not any(files.search(p) for p in ("data.npz", "model.keras.bak", "notes.md"))
    tomllib = pytest.importorskip("tomllib")
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts[shlex.split(h["entry"])[0]] == "losscheck.cli:inspect_each"


def test_docs_config_uses_this_hook():
    text = (ROOT / "docs" / "ci.md").read_text(encoding="utf-8")
    section = re.search(r"^## pre-commit hook\n(.*?)(?=^## |\Z)", text, flags=re.M | re.S).group(1)
    [block] = re.findall(r"```yaml\n(.*?)```", section, flags=re.S)
    [repo] = yaml.safe_load(block)["repos"]
    [used] = repo["hooks"]
    assert used["id"] == hook()["id"]
    from click.testing import CliRunner

    from losscheck.cli import inspect_each

    help_text = CliRunner().invoke(inspect_each, ["--help"]).output
    assert all(a in help_text for a in used["args"] if a.startswith("--"))


def entry_command() -> list[str]:
    """The hook's entry as pre-commit's environment finds it (the installed console script)."""
    entry = shlex.split(hook()["entry"])
    bindir = str(Path(sys.executable).parent)
    found = shutil.which(entry[0], path=bindir + os.pathsep + os.environ.get("PATH", ""))
    assert found, f"{entry[0]} is not installed: reinstall the package (pip install -e .)"
    return [found, *entry[1:]]


@pytest.mark.keras
def test_entry_on_staged_models_gates_by_exit_code():
    """A clean model, a legacy .h5 (an info finding) and a model with an error finding: every report
    is shown, and the error fails the commit; file names are relative, as pre-commit passes them."""
    models = [fixture_files(name)[0].relative_to(ROOT) for name in ("bn_classifier", "tfkeras_h5",
                                                                    "softmax_from_logits")]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "NO_COLOR": "1"}
    out = subprocess.run([*entry_command(), *map(str, models)], cwd=ROOT, capture_output=True, text=True,
                         timeout=300, env=env)
    assert out.returncode == 1, out.stderr
    for model in models:
        assert str(model) in out.stdout
    assert "legacy-keras" in out.stdout and "from-logits-mismatch" in out.stdout
    assert out.stdout.count("(exit 0)") == 2 and out.stdout.count("(exit 1)") == 1
    # the same files without the failing one pass
    clean = run_cli("inspect", models[0])
    assert clean.code == 0 and "(exit 0)" in clean.stdout


@pytest.mark.keras
def test_entry_exit_code_is_the_worst_of_its_files(tmp_path):
    """In-process: a file that is no model is exit 2 (one line), the others are still reported."""
    from click.testing import CliRunner

    from losscheck.cli import inspect_each

    bad = tmp_path / "notes.h5"
    bad.write_bytes(b"not hdf5")
    good = fixture_files("tfkeras_h5")[0]
    result = CliRunner().invoke(inspect_each, [str(bad), str(good), "--fail-on", "info"])
    assert result.exit_code == 2
    assert "legacy-keras" in result.stdout and result.stderr.count("losscheck: error:") == 1
    result = CliRunner().invoke(inspect_each, [str(good), "--fail-on", "info", "--format", "github"])
    assert result.exit_code == 1 and result.stdout.startswith("::notice title=legacy-keras::")


@pytest.mark.parametrize("args, words", [
    ([], "Missing argument 'MODEL...'"),
    (["a.keras", "b.keras", "--output", "r.md"], "--output takes one report"),
    (["a.keras", "b.keras", "--format", "json"], "--format json writes one report"),
    (["a.keras", "--bogus"], "No such option"),
])
def test_usage_errors_are_one_line(args, words):
    from click.testing import CliRunner

    from losscheck.cli import inspect_each

    result = CliRunner().invoke(inspect_each, args)
    assert result.exit_code == 2 and result.stdout == ""
    [line] = result.stderr.strip().splitlines()
    assert words in line and line.startswith("losscheck: error:")
