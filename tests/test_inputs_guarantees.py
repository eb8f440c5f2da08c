"""Issue 6 guarantees, checked on real runs of the installed CLI in a fresh process:
- model, data and custom-objects files are byte-identical after every run, whatever happens;
- a run writes nowhere but --output and the temp dir, which it leaves as it found it: no __pycache__
  beside the --custom-objects file (or the modules it imports), nothing in the working directory,
  nothing in $HOME (Keras writes ~/.keras/keras.json on import unless prevented);
- importing losscheck.cli does not import TensorFlow."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT, sha256
from tests.test_loading_models import TFK

pytestmark = pytest.mark.keras


def tree(path: Path) -> dict[str, str]:
    return {str(p.relative_to(path)): (sha256(p) if p.is_file() else "dir") for p in sorted(path.rglob("*"))}


def one_line(stderr: str) -> bool:
    """The whole of stderr (file descriptor 2, C libraries included) is one `losscheck: error:` line."""
    lines = stderr.strip().splitlines()
    return len(lines) == 1 and lines[0].startswith("losscheck: error: ")


def run(args: list, cwd: Path, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "losscheck", *map(str, args)], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)


def test_runs_write_nowhere_and_modify_nothing(tmp_path):
    work, cwd, tmp, home = (tmp_path / n for n in ("work", "cwd", "tmp", "home"))
    for d in (work, cwd, tmp, home):
        d.mkdir()
    shutil.copy(TFK / "custom_layer.h5", work / "model.bin")  # misnamed: loaded through a temp symlink
    shutil.copy(TFK / "custom_layer.npz", work / "data.npz")
    (work / "helper.py").write_text("FACTOR = 1.0\n")
    (work / "objs.py").write_text("import helper\n" + (TFK / "custom_classes.py").read_text())
    (work / "broken.npz").write_bytes((work / "data.npz").read_bytes()[:300])
    shutil.copy(TFK / "lambda_layer.h5", work / "lambda.h5")
    raw = bytearray((TFK / "custom_layer.h5").read_bytes())
    raw[8000:8400] = bytes(400)  # zeroed HDF5 metadata: the C library fails while Keras reads the weights
    (work / "damaged.h5").write_bytes(bytes(raw))
    os.chmod(work, 0o755)
    before = tree(work)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONDONTWRITEBYTECODE", "KERAS_HOME",
                                                            "TF_CPP_MIN_LOG_LEVEL")}
    env.update(TMPDIR=str(tmp), HOME=str(home), PYTHONPATH=str(ROOT))

    ok = run(["compare", work / "model.bin", work / "data.npz", "--custom-objects", work / "objs.py",
              "--format", "json", "--output", cwd / "report.json"], cwd, env)
    assert ok.returncode in (0, 1), ok.stderr
    assert ok.stderr.startswith("losscheck: wrote ") and len(ok.stderr.splitlines()) == 1, ok.stderr  # no TF logs
    bad = run(["compare", work / "model.bin", work / "broken.npz", "--custom-objects", work / "objs.py"], cwd, env)
    assert bad.returncode == 2 and one_line(bad.stderr) and "broken.npz" in bad.stderr
    refused = run(["inspect", work / "lambda.h5"], cwd, env)
    assert refused.returncode == 2 and one_line(refused.stderr) and "--unsafe" in refused.stderr
    damaged = run(["compare", work / "damaged.h5", work / "data.npz", "--custom-objects", work / "objs.py"], cwd, env)
    assert damaged.returncode == 2 and one_line(damaged.stderr) and "damaged.h5" in damaged.stderr
    unsafe = run(["inspect", work / "lambda.h5", "--unsafe", "--format", "json"], cwd, env)
    assert unsafe.returncode in (0, 1) and unsafe.stderr == "", unsafe.stderr

    assert tree(work) == before  # same files, same bytes, no __pycache__
    assert sorted(p.name for p in cwd.iterdir()) == ["report.json"]
    assert list(tmp.iterdir()) == []
    assert list(home.iterdir()) == []


def test_importing_the_cli_does_not_import_tensorflow():
    code = "import sys, losscheck.cli; print('tensorflow' in sys.modules, 'keras' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert out.stdout.split() == ["False", "False"], out.stderr
