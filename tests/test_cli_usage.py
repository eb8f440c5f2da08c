"""User mistakes in options and paths: one `losscheck: error:` line naming the option, exit 2, and
all of it before TensorFlow is imported (so in well under a second, not the 15-30 s an import and a
model load take)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from tests.conftest import ROOT, run_cli


@pytest.fixture
def files(tmp_path, monkeypatch):
    """Placeholder MODEL and DATA in the working directory: every check here fails before they are read."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("KERAS_BACKEND", raising=False)
    (tmp_path / "m.keras").write_bytes(b"PK placeholder")
    (tmp_path / "d.npz").write_bytes(b"PK placeholder")
    return tmp_path


def one_error_line(result, *needles: str) -> str:
    assert result.code == 2, (result.code, result.stderr)
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("losscheck: error: "), lines[0]
    assert "Usage:" not in lines[0] and "Try " not in lines[0] and "internal error" not in lines[0]
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    return lines[0]


@pytest.mark.parametrize("args, needles", [
    (("compare", "m.keras", "d.npz", "--batch-size", "0"), ("--batch-size", "0")),
    (("compare", "m.keras", "d.npz", "--batch-size", str(2**31)), ("--batch-size", "2147483647")),
    (("compare", "m.keras", "d.npz", "--seed", "-1"), ("--seed", "4294967295")),
    (("compare", "m.keras", "d.npz", "--seed", str(2**32)), ("--seed",)),
    (("compare", "m.keras", "d.npz", "--rtol", "nan"), ("--rtol", "finite")),
    (("compare", "m.keras", "d.npz", "--rtol", "inf"), ("--rtol", "finite")),
    (("compare", "m.keras", "d.npz", "--max-gap", "inf"), ("--max-gap", "finite")),
    (("compare", "m.keras", "d.npz", "--max-gap", "-1"), ("--max-gap",)),
    (("compare", "m.keras"), ("Missing argument 'DATA'", "losscheck compare --help")),
    (("compare", "m.keras", "d.npz", "--no-such-option"), ("--no-such-option",)),
    (("compare", "m.keras", "d.npz", "--format", "yaml"), ("--format", "yaml")),
    (("compare", "m.keras", "d.npz", "--fail-on", "fatal"), ("--fail-on",)),
    (("no-such-command",), ("no-such-command", "losscheck --help")),
    (("inspect", "m.keras", "--max-gap", "0.1"), ("--max-gap",)),
    (("breakdown", "m.keras", "d.npz", "--per-class", "--per-sample"), ("--per-class and --per-sample",)),
    (("breakdown", "m.keras", "d.npz", "--per-output", "--per-class"), ("--per-class and --per-output",)),
    (("breakdown", "m.keras", "d.npz"), ("--per-class, --per-output or --per-sample",)),
])
def test_usage_errors_are_one_line_naming_the_option(files, args, needles):
    one_error_line(run_cli(*args), *needles)


def test_help_is_still_clicks_help():
    result = run_cli("compare", "--help")
    assert result.code == 0 and result.stdout.startswith("Usage: ")
    assert "--per-class" in run_cli("breakdown", "--help").stdout
    bare = run_cli()  # no command: click shows the whole help, not a one-line squash of it
    assert "Commands:" in bare.stdout + bare.stderr and "losscheck: error" not in bare.stderr


@pytest.mark.parametrize("value, needles", [
    ('{"0": NaN, "1": 1}', ("--class-weight", "class 0", "nan", "finite")),
    ('{"0": Infinity}', ("--class-weight", "inf")),
    ('{"0": "heavy"}', ("--class-weight", "'heavy'", "not a number")),
    ('{"a": 1}', ("--class-weight", "JSON object of class -> weight")),
    ("[1, 2]", ("--class-weight", "JSON object")),
    ("weights.json", ("--class-weight", "'weights.json'", "neither JSON nor an existing file")),
])
def test_bad_class_weight_values(files, value, needles):
    one_error_line(run_cli("compare", "m.keras", "d.npz", "--class-weight", value), *needles)


def test_class_weight_files(files):
    (files / "latin1.json").write_bytes('{"0": 1, "1": 2} # poids élevé'.encode("latin-1"))
    one_error_line(run_cli("compare", "m.keras", "d.npz", "--class-weight", "latin1.json"),
                   "latin1.json", "not UTF-8")
    (files / "nan.json").write_text('{"0": NaN}')
    one_error_line(run_cli("compare", "m.keras", "d.npz", "--class-weight", "nan.json"), "nan", "finite")
    (files / "folder").mkdir()
    one_error_line(run_cli("compare", "m.keras", "d.npz", "--class-weight", "folder"), "folder", "not a regular file")
    if os.geteuid() != 0:  # root reads whatever the permission bits say
        locked = files / "locked.json"
        locked.write_text('{"0": 1}')
        locked.chmod(0)
        one_error_line(run_cli("compare", "m.keras", "d.npz", "--class-weight", "locked.json"),
                       "locked.json", "cannot be read")


def test_keras_backend_that_is_not_installed_or_not_a_backend(files, monkeypatch):
    import importlib.util

    missing = next(n for n in ("jax", "torch", "openvino") if importlib.util.find_spec(n) is None)
    monkeypatch.setenv("KERAS_BACKEND", missing)
    one_error_line(run_cli("inspect", "m.keras"), f"KERAS_BACKEND={missing}", "not installed",
                   "unset KERAS_BACKEND or set it to tensorflow")
    monkeypatch.setenv("KERAS_BACKEND", "tensorfow")
    one_error_line(run_cli("inspect", "m.keras"), "KERAS_BACKEND='tensorfow'", "not a Keras backend")


def test_backend_option_unknown_missing_or_inference_only(files, monkeypatch):
    import importlib.util

    one_error_line(run_cli("inspect", "m.keras", "--backend", "tensorfow"), "--backend='tensorfow'",
                   "not a Keras backend", "tensorflow, jax, torch")
    missing = next((n for n in ("torch", "jax") if importlib.util.find_spec(n) is None), None)
    if missing is not None:
        one_error_line(run_cli("compare", "m.keras", "d.npz", "--backend", missing), f"--backend={missing}",
                       "not installed", f'pip install "losscheck[{missing}]"')
    if importlib.util.find_spec("numpy") is not None:
        one_error_line(run_cli("inspect", "m.keras", "--backend", "numpy"), "--backend=numpy", "cannot train")
    assert "KERAS_BACKEND" not in os.environ  # a refused --backend changes nothing


@pytest.mark.parametrize("spec, needles", [
    ("msee", ("--loss", "'msee'", "not a Keras loss name")),
    ("Mean_Squared_Error", ("did you mean mean_squared_error",)),
    ("nofile.py:my_loss", ("nofile.py", "--loss file not found")),
    ("losses.py:not-a-name", ("not a Python name",)),
])
def test_bad_loss_is_refused_before_loading(files, spec, needles):
    (files / "losses.py").write_text("def my_loss(y_true, y_pred):\n    return y_pred\n")
    one_error_line(run_cli("compare", "m.keras", "d.npz", "--loss", spec), *needles)


@pytest.mark.parametrize("make, needles", [
    (lambda p: None, ("objs.py", "--custom-objects file not found")),
    (lambda p: p.mkdir(), ("objs.py", "is a directory")),
    (lambda p: os.mkfifo(p), ("objs.py", "not a regular file")),  # opening a FIFO would block forever
    (lambda p: os.symlink("gone.py", p), ("objs.py", "broken symbolic link")),
])
def test_custom_objects_path_problems(files, make, needles):
    make(files / "objs.py")
    one_error_line(run_cli("compare", "m.keras", "d.npz", "--custom-objects", "objs.py"), *needles)


def test_symlink_loop_as_model_or_data(files):
    os.symlink("loop_a", files / "loop_b")
    os.symlink("loop_b", files / "loop_a")
    one_error_line(run_cli("inspect", "loop_a"), "loop_a", "model file", "symbolic link loop")
    one_error_line(run_cli("compare", "m.keras", "loop_b"), "loop_b", "data file", "symbolic link loop")


SCRIPT = textwrap.dedent("""
    import json, sys, time
    from click.testing import CliRunner
    from losscheck.cli import main

    out = []
    for args in json.loads(sys.argv[1]):
        start = time.perf_counter()
        r = CliRunner().invoke(main, args, catch_exceptions=False)
        out.append({"code": r.exit_code, "stderr": r.stderr, "seconds": time.perf_counter() - start})
    print(json.dumps({"runs": out, "tensorflow": "tensorflow" in sys.modules, "keras": "keras" in sys.modules}))
""")


def test_path_option_and_loss_errors_come_before_tensorflow(tmp_path):
    """In a fresh process: each mistake is reported without importing TensorFlow or Keras."""
    (tmp_path / "m.keras").write_bytes(b"PK placeholder")
    (tmp_path / "d.npz").write_bytes(b"PK placeholder")
    (tmp_path / "cw.json").write_bytes(b"\xff\xfe")
    m, d = str(tmp_path / "m.keras"), str(tmp_path / "d.npz")
    cases = [
        ["compare", str(tmp_path / "typo.keras"), d],
        ["compare", m, str(tmp_path / "typo.npz")],
        ["compare", m, d, "--loss", "mean_sqared_error"],
        ["compare", m, d, "--custom-objects", str(tmp_path / "typo.py")],
        ["compare", m, d, "--class-weight", str(tmp_path / "cw.json")],
        ["compare", m, d, "--output", m],
        ["compare", m, d, "--output", str(tmp_path / "no-such-dir" / "r.json")],
        ["breakdown", m, d, "--per-class", "--per-output"],
        ["compare", m, str(tmp_path / "nofn.py") + ":make_data"],
        ["compare", m, str(tmp_path / "records"), "--parse", str(tmp_path / "parse.py") + ":parse"],
    ]
    env = {k: v for k, v in os.environ.items() if k != "KERAS_BACKEND"}
    env["PYTHONPATH"] = str(ROOT)
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", SCRIPT, json.dumps(cases)], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=120)
    elapsed = time.perf_counter() - start
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["tensorflow"] is False and doc["keras"] is False
    for case, run in zip(cases, doc["runs"], strict=True):
        assert run["code"] == 2, (case, run)
        assert len(run["stderr"].splitlines()) == 1 and run["stderr"].startswith("losscheck: error: "), run
        assert run["seconds"] < 1.0, (case, run)
    assert elapsed < 30  # interpreter start, numpy/click imports and eight errors; a TF import alone takes longer
    assert Path(m).read_bytes() == b"PK placeholder"


@pytest.mark.keras
def test_the_static_loss_names_are_kerass():
    """losscheck checks --loss names without importing Keras: its list is exactly what keras.losses.get
    knows, plus the tf.keras names losscheck maps."""
    import keras
    from keras.src.losses import ALL_OBJECTS_DICT

    from losscheck.loading.losses import _AUTO_CE, _KERAS2_ALIASES
    from losscheck.preflight import AUTO_CROSSENTROPY, KERAS2_LOSS_ALIASES, KERAS_LOSS_NAMES

    assert set(KERAS_LOSS_NAMES) == set(ALL_OBJECTS_DICT)
    assert set(KERAS2_LOSS_ALIASES) == set(_KERAS2_ALIASES)
    assert set(AUTO_CROSSENTROPY) == set(_AUTO_CE)
    for name in sorted(KERAS_LOSS_NAMES - {"Loss", "LossFunctionWrapper"}):
        assert callable(keras.losses.get(name)), name
