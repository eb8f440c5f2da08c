"""The code stays within the project's lint and type settings (pyproject.toml): ruff clean (line length,
blind excepts, imports, bugbear) and mypy clean with check_untyped_defs."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _run(tool: str, *args: str) -> subprocess.CompletedProcess:
    if importlib.util.find_spec(tool) is None:
        pytest.skip(f"{tool} is not installed (pip install '.[test]')")
    return subprocess.run([sys.executable, "-m", tool, *args], cwd=ROOT, capture_output=True, text=True, timeout=600)


def test_ruff_is_clean():
    done = _run("ruff", "check", "losscheck", "tests")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-1000:]


def test_mypy_is_clean():
    done = _run("mypy", "losscheck")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-1000:]
