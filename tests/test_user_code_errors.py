"""The user's own code (--custom-objects, --loss FILE.py:NAME) fails or exits: that is their error,
reported in one line with their message and where (exit 2), never an internal error, and never a
silent exit 0 without a report. A NaN figure never passes as OK."""

from __future__ import annotations

import math
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.conftest import ROOT, run_cli

USER_CODE = textwrap.dedent('''
    import os
    import sys

    import keras


    def z_of_yz(y_true, y_pred):
        """A loss written for a 2-column target, used on a 1-column one."""
        return keras.ops.mean((y_true[:, 1] - y_pred[:, 1]) ** 2)


    def exits_loss(y_true, y_pred):
        sys.exit(0)


    def hard_exits_loss(y_true, y_pred):
        os._exit(0)


    def helper(x):
        return x[:, 7]


    def indirect_loss(y_true, y_pred):
        return keras.ops.mean(helper(y_pred))


    def nan_loss(y_true, y_pred):
        return keras.ops.mean((y_true - y_pred) ** 2, axis=-1) * float("nan")


    @keras.saving.register_keras_serializable(package="t")
    class Exiting(keras.layers.Layer):
        def call(self, x):
            sys.exit(5)


    @keras.saving.register_keras_serializable(package="t")
    class Failing(keras.layers.Layer):
        def call(self, x):
            return x[:, 7]
''')


def one_line(result, *needles: str) -> str:
    assert result.code == 2, (result.code, result.stdout[:300], result.stderr)
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("losscheck: error: "), result.stderr
    assert "internal error" not in lines[0] and "please report" not in lines[0]
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    return lines[0]


@pytest.fixture(scope="module")
def work(tmp_path_factory) -> Path:
    """A 1-output regression model (output 'Y', target (n, 1)), its data and the user's code file."""
    import keras
    import numpy as np

    folder = tmp_path_factory.mktemp("usercode")
    rng = np.random.default_rng(7)
    keras.utils.set_random_seed(7)
    inputs = keras.Input((4,), name="inp")
    model = keras.Model(inputs, keras.layers.Dense(1, name="Y")(inputs))
    model.compile("adam", "mse")
    model.save(folder / "model.keras")
    np.savez(folder / "data.npz", x=rng.normal(size=(24, 4)).astype("float32"),
             y=rng.normal(size=(24, 1)).astype("float32"))
    (folder / "user.py").write_text(USER_CODE)
    return folder


@pytest.mark.keras
def test_a_loss_that_slices_out_of_bounds_is_the_users_error(work):
    line = one_line(run_cli("compare", work / "model.keras", work / "data.npz", "--loss",
                            f"{work / 'user.py'}:z_of_yz"),
                    "your loss 'z_of_yz' failed on output 'Y'", "slice index 1", "out of bounds", "user.py, line")
    assert "{{node" not in line


@pytest.mark.keras
def test_a_helper_called_by_the_loss_names_the_loss_and_the_helper_line(work):
    one_line(run_cli("compare", work / "model.keras", work / "data.npz", "--loss", f"{work / 'user.py'}:indirect_loss"),
             "your loss 'indirect_loss' failed on output 'Y'", "in helper")


@pytest.mark.keras
def test_sys_exit_in_a_loss_is_not_exit_0(work):
    one_line(run_cli("compare", work / "model.keras", work / "data.npz", "--loss", f"{work / 'user.py'}:exits_loss"),
             "your code called sys.exit(0)", "user.py", "in exits_loss")


@pytest.mark.keras
def test_sys_exit_at_import_of_custom_objects(tmp_path, work):
    (tmp_path / "objs.py").write_text("import sys\nsys.exit(0)\n")
    one_line(run_cli("inspect", work / "model.keras", "--custom-objects", tmp_path / "objs.py"),
             "your code called sys.exit(0)", "objs.py, line 2")


@pytest.mark.keras
@pytest.mark.parametrize("name, needles", [
    ("Exiting", ("your code called sys.exit(5)", "user.py", "in call")),
    ("Failing", ("your custom code failed", "slice index 7", "out of bounds", "user.py, line", "in call")),
])
def test_custom_layers_that_exit_or_fail(tmp_path, work, name, needles):
    """The model's custom layer (from --custom-objects) runs the user's code while Keras builds it."""
    import keras
    import numpy as np

    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(4)])
    model.compile("adam", "mse")
    path = tmp_path / f"{name}.keras"
    model.save(path)
    _swap_in_custom_layer(path, name)
    np.savez(tmp_path / "d.npz", x=np.ones((8, 4), "float32"), y=np.ones((8, 4), "float32"))
    one_line(run_cli("compare", path, tmp_path / "d.npz", "--custom-objects", work / "user.py"), *needles)


def _swap_in_custom_layer(path: Path, name: str) -> None:
    """Rewrite the saved config so its Dense layer is the user's layer `name` (no weights needed)."""
    import json
    import zipfile

    with zipfile.ZipFile(path) as zf:
        members = {n: zf.read(n) for n in zf.namelist()}
    config = json.loads(members["config.json"])
    layer = config["config"]["layers"][-1]
    layer.update({"module": None, "class_name": name, "registered_name": f"t>{name}",
                  "config": {"name": layer["config"]["name"], "trainable": True, "dtype": "float32"}})
    members["config.json"] = json.dumps(config).encode()
    with zipfile.ZipFile(path, "w") as zf:
        for n, b in members.items():
            if n == "model.weights.h5":
                import h5py

                tmp = path.with_suffix(".weights.h5")
                with h5py.File(tmp, "w") as f:
                    f.create_group("layers")
                    f.create_group("vars")
                b = tmp.read_bytes()
                tmp.unlink()
            zf.writestr(n, b)


@pytest.mark.keras
def test_os_exit_in_a_loss_is_reported_not_a_silent_exit(work):
    """os._exit would end the process with no report and the user's exit code: in a fresh process."""
    env = {k: v for k, v in os.environ.items() if k != "KERAS_BACKEND"}
    env["PYTHONPATH"] = str(ROOT)
    proc = subprocess.run([sys.executable, "-m", "losscheck", "compare", str(work / "model.keras"),
                           str(work / "data.npz"), "--loss", f"{work / 'user.py'}:hard_exits_loss"],
                          cwd=work, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2, proc.stderr
    assert proc.stdout == ""
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "your code called os._exit(0)" in lines[0] and "hard_exits_loss" in lines[0]


@pytest.mark.keras
def test_a_nan_loss_is_never_ok(work):
    result = run_cli("compare", work / "model.keras", work / "data.npz", "--loss", f"{work / 'user.py'}:nan_loss",
                     "--format", "json")
    assert result.code == 1
    doc = result.json
    assert doc["figures"]["evaluate"]["value"] is None or math.isnan(doc["figures"]["evaluate"]["value"])
    assert any(f["code"] == "non-finite" and f["severity"] == "error" for f in doc["findings"])


def test_a_nan_figure_without_a_finding_still_fails(monkeypatch, tmp_path):
    """Whatever the core reports, a non-finite figure is an error finding, so the run cannot exit 0."""
    import losscheck.commands.compare
    from tests.test_report_render import clean_report

    def nan_report(cfg, progress):
        report = clean_report()
        report.figures["evaluate"].value = float("nan")
        return report

    monkeypatch.setattr(losscheck.commands.compare, "run_compare", nan_report)
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("KERAS_BACKEND", raising=False)
    for name in ("m.keras", "d.npz"):
        (tmp_path / name).write_bytes(b"PK placeholder")
    assert clean_report().exit_code() == 0
    result = run_cli("compare", "m.keras", "d.npz", "--format", "json")
    assert result.code == 1
    assert [f["code"] for f in result.json["findings"] if f["severity"] == "error"] == ["non-finite"]


@pytest.mark.keras
def test_a_loss_that_fails_only_when_it_runs_is_named_as_a_suspect(tmp_path, work):
    """An index out of range inside the graph fails at run time: TensorFlow's InvalidArgumentError does
    not say which op failed, so the line names both suspects: the data and the user's loss."""
    (tmp_path / "gather.py").write_text(textwrap.dedent('''
        import keras


        def gather_loss(y_true, y_pred):
            index = keras.ops.cast(keras.ops.max(keras.ops.abs(y_true)) * 0 + 5, "int32")
            return keras.ops.mean(keras.ops.take_along_axis(y_pred, keras.ops.reshape(index, (1, 1)) +
                                  keras.ops.zeros_like(y_pred, dtype="int32"), axis=1))
    '''))
    one_line(run_cli("compare", work / "model.keras", work / "data.npz", "--loss",
                     f"{tmp_path / 'gather.py'}:gather_loss"),
             "data.npz", "is not in [0, 1)", "your own loss 'gather_loss' (output 'Y')")
