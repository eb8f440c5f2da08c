"""The test commands (README, docs/development.md): `python -m pytest` and `python -m pytest -m "not keras"`
leave out the tests marked slow; `-m slow`, --run-slow or LOSSCHECK_RUN_SLOW=1 runs them (tests/conftest.py)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests import conftest
from tests.conftest import ROOT

SLOW_NOT_KERAS = "tests/test_perf.py::test_peak_rss_flat_in_samples_with_h5"


def test_readme_fast_command_leaves_out_slow_tests():
    out = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q", "-m", "not keras",
                          "tests/test_perf.py"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert "deselected" in out.stdout and SLOW_NOT_KERAS not in out.stdout, out.stdout


class _Item:
    def __init__(self, name: str, slow: bool) -> None:
        self.name, self.slow = name, slow

    def get_closest_marker(self, name: str):
        return object() if name == "slow" and self.slow else None


class _Config:
    def __init__(self, markexpr: str, run_slow: bool) -> None:
        self.options = {"markexpr": markexpr, "--run-slow": run_slow}
        self.deselected: list = []
        self.hook = self

    def getoption(self, name: str):
        return self.options[name]

    def pytest_deselected(self, items) -> None:
        self.deselected += items


@pytest.mark.parametrize("markexpr, run_slow, env, kept", [
    ("", False, None, False),
    ("not keras", False, None, False),
    ("slow", False, None, True),
    ("slow and not keras", False, None, True),
    ("not keras", True, None, True),
    ("not keras", False, "1", True),
])
def test_slow_tests_only_when_asked(monkeypatch, markexpr, run_slow, env, kept):
    if env is None:
        monkeypatch.delenv("LOSSCHECK_RUN_SLOW", raising=False)
    else:
        monkeypatch.setenv("LOSSCHECK_RUN_SLOW", env)
    items = [_Item("fast", False), _Item("slow", True)]
    config = _Config(markexpr, run_slow)
    conftest.pytest_collection_modifyitems(config, items)
    assert [i.name for i in items] == (["fast", "slow"] if kept else ["fast"])
    assert [i.name for i in config.deselected] == ([] if kept else ["slow"])
