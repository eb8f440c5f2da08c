"""The documentation site builds with `mkdocs build --strict` (no broken link, anchor or include), and its
home page shows the README's set-up commands, worked example and usage block."""

from __future__ import annotations

import html
import importlib.util
import os
import re
import subprocess
import sys

import pytest

from tests.conftest import ROOT

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("mkdocs") is None or importlib.util.find_spec("material") is None,
    reason="mkdocs and mkdocs-material are not installed (pip install \".[test]\")",
)


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    out = tmp_path_factory.mktemp("site")
    done = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-d", str(out)], cwd=ROOT,
                          capture_output=True, text=True, timeout=300,
                          env={**os.environ, "NO_MKDOCS_2_WARNING": "1"})
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return out


def _text(page) -> str:
    return html.unescape(re.sub(r"<[^>]+>", "", page.read_text(encoding="utf-8")))


def test_mkdocs_build_strict_passes(site):
    assert (site / "index.html").is_file() and (site / "findings" / "index.html").is_file()


def test_home_page_includes_the_readme(site):
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    setup = re.search(r"```bash\n(.*?)```", readme, flags=re.S).group(1).strip().splitlines()
    home = _text(site / "index.html")
    assert all(command in home for command in setup)
    assert readme.splitlines()[2].replace("`", "") in home  # the pitch's first line
    assert "OK (exit 0)" in home and "losscheck-inspect   MODEL" in home and "--8<--" not in home
