"""Mistakes that need no Keras are answered before TensorFlow is imported: the CLI runs with tensorflow and
keras made unimportable (packages first on PYTHONPATH that raise on import) and still gives the one line.
Every case runs in one fresh process (CliRunner, one invocation each), so the module costs one start."""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import numpy as np
import pytest
from conftest import FIXTURES, ROOT, fixture_files

MODEL, DATA = fixture_files("dense_story4")  # Sequential: input 'x' (n, 5) -> output 'out' (n, 1)
TWO_IN = FIXTURES / "inputs_keras3" / "two_in.keras"  # inputs 'a' (4,), 'b' (2,) -> 'out'
H5_MODEL = FIXTURES / "inputs_keras3" / "mse_str.h5"  # Keras 3 .h5: 'x' (n, 4) -> 'out'
TFK_MODEL = FIXTURES / "inputs_tfkeras" / "two_dict.h5"  # tf.keras 2 .h5: 'x' -> 'reg', 'cls'
N = 96


def _npz(path: Path, **arrays) -> Path:
    np.savez(path, **arrays)
    return path


def _h5(path: Path, hostile=None, **arrays) -> Path:
    import h5py

    with h5py.File(path, "w") as f:
        for key, value in arrays.items():
            f[key] = value
        if hostile is not None:
            hostile(f)
    return path


def _x(n: int = N, width: int = 5):
    return np.zeros((n, width), "float32")


def _y(n: int = N):
    return np.zeros((n, 1), "float32")


def _bomb(path: Path) -> Path:
    """An .npz whose x member inflates 300 MiB of zeros behind an honest header (tests/test_security_bombs.py)."""
    from test_security_bombs import MIB, _npy_header, zeros_member

    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1) as zf:
        zeros_member(zf, "x.npy", 300, head=_npy_header((300 * MIB // 16, 4)))
        with zf.open("y.npy", "w") as fh:
            np.lib.format.write_array(fh, np.zeros((4, 1), "float32"))
    return path


def _forged(path: Path) -> Path:
    """An .npz whose x header declares 10^10 rows over a member of a few bytes."""
    from test_security_bombs import _npy_header

    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("x.npy", _npy_header((10**10, 5)) + _x().tobytes())
        with zf.open("y.npy", "w") as fh:
            np.lib.format.write_array(fh, _y())
    return path


def _weights_only(path: Path) -> Path:
    """What model.save_weights writes: an HDF5 file with the weights and no architecture."""
    import h5py

    with h5py.File(path, "w") as f:
        f.create_group("layers").create_group("dense").create_group("vars")["0"] = np.zeros((2, 2), "float32")
    return path


def _keras_bomb(path: Path) -> Path:
    from test_security_bombs import bomb_keras

    return bomb_keras(path, weights_mib=300)


def _soft_link_y(f) -> None:
    import h5py

    f["stash/y"] = f["y"][()]
    del f["y"]
    f["y"] = h5py.SoftLink("/stash/y")


def _big_chunks(f) -> None:
    f.create_dataset("spare", shape=(1 << 27,), dtype="float32", chunks=(1 << 27,), compression="gzip")


def _strings_h5(path: Path) -> Path:
    import h5py

    return _h5(path, lambda f: f.create_dataset("y", data=np.array([b"a"] * N, dtype=h5py.string_dtype())), x=_x())


def _unwritable(tmp: Path) -> Path:
    folder = tmp / "locked"
    folder.mkdir()
    folder.chmod(0o500)
    return folder / "report.json"


def _link_to_model(tmp: Path) -> Path:
    link = tmp / "report.json"
    link.symlink_to(MODEL)
    return link


def _broken_link(tmp: Path) -> Path:
    link = tmp / "val.npz"
    link.symlink_to(tmp / "gone.npz")
    return link


def _parse_file(tmp: Path) -> Path:
    (tmp / "parse.py").write_text("def parse(example):\n    return example, example\n")
    return tmp / "parse.py"


def _tensorboard_without_events(tmp: Path) -> Path:
    (tmp / "logs").mkdir()
    return tmp / "logs"


#: case -> (arguments after `compare`, built in a temporary folder; phrases the one error line holds)
CASES = {
    # the model file
    "missing model": (lambda t: [t / "nope.keras", DATA], ["nope.keras", "model file not found"]),
    "data as model": (lambda t: [DATA, DATA], ["is an .npz data file, not a model file"]),
    "weights only": (lambda t: [_weights_only(t / "w.weights.h5"), DATA], ["holds only weights"]),
    "weights only, Keras 3": (lambda t: [FIXTURES / "inputs_keras3" / "weights.weights.h5", DATA],
                              ["weights.weights.h5", "holds only weights"]),
    "weights only, tf.keras": (lambda t: [FIXTURES / "inputs_tfkeras" / "weights_only.h5", DATA],
                               ["weights_only.h5", "holds only weights"]),
    "keras bomb": (lambda t: [_keras_bomb(t / "bomb.keras"), DATA], ["bomb.keras", "decompression bomb"]),
    # what the data file is
    "missing data": (lambda t: [MODEL, t / "nope.npz"], ["nope.npz", "data file not found"]),
    "model as data": (lambda t: [MODEL, H5_MODEL], ["mse_str.h5", "is a Keras model file, not a data file"]),
    "single npy": (lambda t: [MODEL, np.save(t / "x.npy", _x()) or t / "x.npy"], ["x.npy", "single .npy array"]),
    "pickle": (lambda t: [MODEL, (t / "d.pkl").write_bytes(pickle.dumps({"x": 1})) and t / "d.pkl"],
               ["d.pkl", "is a pickle"]),
    # .npz and .h5 headers
    "npz bomb": (lambda t: [MODEL, _bomb(t / "bomb.npz")], ["bomb.npz", "decompression bomb"]),
    "npz forged shape": (lambda t: [MODEL, _forged(t / "forged.npz")], ["'x' declares shape", "forged"]),
    "h5 soft link": (lambda t: [MODEL, _h5(t / "soft.h5", _soft_link_y, x=_x(), y=_y())],
                     ["soft.h5", "'y' is a soft link", "never follows"]),
    "h5 chunks": (lambda t: [MODEL, _h5(t / "chunks.h5", _big_chunks, x=_x(), y=_y())],
                  ["chunks.h5", "'spare'", "chunks of 512 MiB"]),
    # keys, from the model's config.json / model_config
    "npz no y": (lambda t: [MODEL, _npz(t / "noy.npz", x=_x(), z=_y())],
                 ["noy.npz", "no target arrays: expected 'y', found 'x', 'z'"]),
    "npz inputs by name": (lambda t: [TWO_IN, _npz(t / "one.npz", x=_x(40, 4), y=_y(40))],
                           ["one.npz", "no input arrays: expected 'x_a', 'x_b' (or 'x_0', 'x_1')"]),
    "h5 no x": (lambda t: [H5_MODEL, _h5(t / "nox.h5", inputs=_x(40, 4), y=_y(40))],
                ["nox.h5", "no input arrays: expected 'x', found 'inputs', 'y'"]),
    "tf.keras outputs": (lambda t: [TFK_MODEL, _npz(t / "two.npz", x=_x(40, 4), y=_y(40))],
                         ["two.npz", "no target arrays: expected 'y_reg', 'y_cls' (or 'y_0', 'y_1')"]),
    "h5 group as x": (lambda t: [MODEL, _h5(t / "group.h5", lambda f: f.create_group("x"), y=_y())],
                      ["group.h5", "'x' is an HDF5 group, not a dataset"]),
    # sample counts
    "npz counts": (lambda t: [MODEL, _npz(t / "n.npz", x=_x(), y=_y(N - 3))],
                   ["n.npz", "disagree on the number of samples", "x (96, 5)", "y (93, 1)"]),
    "h5 counts": (lambda t: [MODEL, _h5(t / "n.h5", x=_x(), y=_y(N - 3))],
                  ["n.h5", "disagree on the number of samples"]),
    "sample_weight length": (lambda t: [MODEL, _npz(t / "sw.npz", x=_x(), y=_y(), sample_weight=np.ones(5))],
                             ["sw.npz", "disagree on the number of samples", "sample_weight (5,)"]),
    "sample_weight shape": (lambda t: [MODEL, _npz(t / "sw3.npz", x=_x(), y=_y(), sample_weight=np.ones((N, 3)))],
                            ["sw3.npz", "sample_weight has shape (96, 3)", "fits neither"]),
    "empty": (lambda t: [MODEL, _npz(t / "empty.npz", x=_x(0), y=_y(0))], ["empty.npz", "holds no samples"]),
    # dtypes (never unpickled)
    "npz objects": (lambda t: [MODEL, _npz(t / "obj.npz", x=_x(), y=np.array([{"a": 1}] * N, dtype=object))],
                    ["obj.npz", "'y' holds Python objects", "never unpickles"]),
    "npz strings": (lambda t: [MODEL, _npz(t / "str.npz", x=_x(), y=np.array(["a"] * N))],
                    ["str.npz", "'y' holds dtype <U1, not numbers"]),
    "h5 strings": (lambda t: [MODEL, _strings_h5(t / "str.h5")],
                   ["str.h5", "'y' holds strings (an HDF5 string dataset), not numbers"]),
    # --val: the same checks, naming the validation file
    "missing --val": (lambda t: [MODEL, DATA, "--val", t / "nope.npz"],
                      ["nope.npz", "validation data file (--val) not found"]),
    "broken link as --val": (lambda t: [MODEL, DATA, "--val", _broken_link(t)],
                             ["val.npz", "validation data file (--val) is a broken symbolic link"]),
    "--val folder": (lambda t: [MODEL, DATA, "--val", t], ["is a directory, not a validation data file (--val)"]),
    "--val keys": (lambda t: [MODEL, DATA, "--val", _npz(t / "val.npz", x=_x(), labels=_y())],
                   ["val.npz", "no target arrays: expected 'y'"]),
    "--val counts": (lambda t: [MODEL, DATA, "--val", _h5(t / "val.h5", x=_x(), y=_y(7))],
                     ["val.h5", "disagree on the number of samples"]),
    # the other path options
    "missing --history": (lambda t: [MODEL, DATA, "--history", t / "nope.json"],
                          ["--history", "nope.json", "does not exist"]),
    "bad --history": (lambda t: [MODEL, DATA, "--history", (t / "h.json").write_text("{oops") and t / "h.json"],
                      ["--history", "h.json"]),
    "--history folder": (lambda t: [MODEL, DATA, "--history", _tensorboard_without_events(t)],
                         ["--history", "holds no TensorBoard event files"]),
    "missing --custom-objects": (lambda t: [MODEL, DATA, "--custom-objects", t / "nope.py"],
                                 ["nope.py", "--custom-objects file not found"]),
    "--custom-objects folder": (lambda t: [MODEL, DATA, "--custom-objects", t], ["--custom-objects", "is a directory"]),
    "missing --parse": (lambda t: [MODEL, t, "--parse", f"{t / 'nope.py'}:parse"],
                        ["nope.py", "--parse file not found"]),
    "missing TFRecords": (lambda t: [MODEL, t / "records", "--parse", f"{_parse_file(t)}:parse"],
                          ["records", "TFRecord file or folder not found"]),
    "--output folder": (lambda t: [MODEL, DATA, "--output", t], ["--output", "is a directory"]),
    "--output missing folder": (lambda t: [MODEL, DATA, "--output", t / "nodir" / "r.json"],
                                ["the folder", "nodir", "does not exist"]),
    "--output unwritable folder": (lambda t: [MODEL, DATA, "--output", _unwritable(t)],
                                   ["locked", "is not writable", "choose another --output"]),
    "--output link to the model": (lambda t: [MODEL, DATA, "--output", _link_to_model(t)],
                                   ["report.json", "is the model", "choose another --output"]),
}

ROOT_SKIPS = {"--output unwritable folder"}

SCRIPT = textwrap.dedent("""
    import json, sys
    from click.testing import CliRunner
    from losscheck.cli import main

    out = {}
    for case, args in json.loads(sys.argv[1]).items():
        r = CliRunner().invoke(main, ["compare", *args], catch_exceptions=False)
        out[case] = {"code": r.exit_code, "stdout": r.stdout, "stderr": r.stderr}
    print(json.dumps({"runs": out, "imported": sorted(m for m in ("tensorflow", "keras") if m in sys.modules)}))
""")


@pytest.fixture(scope="module")
def answers(tmp_path_factory) -> dict:
    """Every case run in one process whose tensorflow and keras packages raise ImportError on import."""
    blocked = tmp_path_factory.mktemp("no_tf")
    for name in ("tensorflow", "keras", "tf_keras", "jax", "torch"):
        (blocked / name).mkdir()
        (blocked / name / "__init__.py").write_text(f'raise ImportError("{name} is made unimportable")\n')
    args = {}
    for case, (build, _) in CASES.items():
        if case in ROOT_SKIPS and os.geteuid() == 0:
            continue
        folder = tmp_path_factory.mktemp("case")
        args[case] = [str(a) for a in build(folder)]
    env = {k: v for k, v in os.environ.items() if k != "KERAS_BACKEND"}
    env["PYTHONPATH"] = os.pathsep.join([str(blocked), str(ROOT)])
    done = subprocess.run([sys.executable, "-c", SCRIPT, json.dumps(args)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    doc = json.loads(done.stdout)
    assert doc["imported"] == []
    return doc["runs"]


@pytest.mark.parametrize("case", list(CASES))
def test_answered_before_tensorflow(answers, case):
    if case in ROOT_SKIPS and os.geteuid() == 0:
        pytest.skip("root may write into any folder")
    run = answers[case]
    assert "unimportable" not in run["stderr"], run["stderr"]
    assert run["code"] == 2 and run["stdout"] == "", run
    lines = run["stderr"].strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("losscheck: error: "), run["stderr"]
    for phrase in CASES[case][1]:
        assert phrase in lines[0], (phrase, lines[0])


def _pairs() -> list[tuple[Path, Path]]:
    """Every bundled model with the data file built for it."""
    pairs = []
    for folder in sorted(p for p in FIXTURES.iterdir() if p.is_dir()):
        for model in sorted([*folder.glob("*.keras"), *folder.glob("*.h5")]):
            data = folder / "data.npz" if model.stem in ("model", "onehot") else model.with_suffix(".npz")
            if data.exists():
                pairs.append((model, data))
    return pairs


def test_bundled_data_passes_the_early_checks():
    """No false alarm: each bundled data file passes the checks made from its model's saved names."""
    from losscheck.core.errors import LosscheckError
    from losscheck.loading.data_precheck import precheck_data_file
    from losscheck.preflight import check_model

    checked = 0
    for model, data in _pairs():
        try:
            names = check_model(model)
        except LosscheckError:
            continue  # a model refused on purpose (a tf.keras 2 .keras archive, ...)
        precheck_data_file(data, names)
        checked += names is not None
    assert checked > 40


@pytest.mark.keras
def test_saved_names_are_the_loaded_models(tmp_path):
    """The input and output names read from a model's file are those of the model Keras loads (a
    Sequential, Functional models with several inputs/outputs or dict inputs, tf.keras .h5); a
    subclassed model gives none."""
    from losscheck._tf import keras
    from losscheck.loading.files import io_names, read_model_file_info
    from losscheck.loading.inputs import input_names
    from losscheck.loading.model import load_model

    b, a = keras.Input((2,), name="zeta"), keras.Input((3,), name="alpha")
    h = keras.layers.Concatenate()([b, a])
    dict_model = keras.Model({"zeta": b, "alpha": a}, {"o_one": keras.layers.Dense(1, name="o_one")(h),
                                                       "a_two": keras.layers.Dense(1, name="a_two")(h)})
    dict_model.compile(loss="mse")
    dict_model.save(tmp_path / "dict.keras")
    models = [MODEL, TWO_IN, H5_MODEL, TFK_MODEL, FIXTURES / "tfkeras_h5" / "model.h5",
              FIXTURES / "two_outputs" / "model.keras", FIXTURES / "string_lookup" / "model.keras",
              tmp_path / "dict.keras"]
    for path in models:
        loaded = load_model(path)
        assert io_names(read_model_file_info(path).model_config) == (input_names(loaded.model),
                                                                      list(loaded.output_names)), path
    assert io_names(read_model_file_info(FIXTURES / "subclassed_bn_model" / "model.keras").model_config) is None
