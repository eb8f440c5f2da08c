"""HDF5 files never reach outside themselves: a data or model file whose dataset keeps its raw data in
another file (external storage), an external or soft link, or a virtual dataset is refused (exit 2,
one line naming the dataset) before a byte of it is read, and the bytes it points at never appear in
the output. Every hostile file is built here with h5py, next to a 'secret' file it points at."""

from __future__ import annotations

import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import load_npz, run_cli
from tests.test_loading_models import K3, assert_refused

pytestmark = pytest.mark.keras

SECRET = b"TOPSECRET-do-not-print-"
MODEL = K3 / "mse_str.h5"  # x (n, 4) float -> out (n, 1), loss mse
KERAS_MODEL = K3 / "two_in.keras"


def secret_file(tmp_path: Path) -> Path:
    path = tmp_path / "secret.bin"
    path.write_bytes((SECRET * 4096)[:65536])
    return path


def data_arrays() -> dict[str, np.ndarray]:
    return load_npz(K3 / "mse_str.npz")


def write_h5(path: Path, arrays: dict[str, np.ndarray], hostile) -> Path:
    import h5py

    with h5py.File(path, "w") as f:
        for key, value in arrays.items():
            f[key] = value
        hostile(f)
    return path


def external_x(secret: Path, n: int):
    def make(f):
        del f["x"]
        f.create_dataset("x", shape=(n, 4), dtype="float32", external=[(str(secret), 0, n * 16)])
    return make


def external_link_y(target: Path):
    def make(f):
        del f["y"]
        f["y"] = __import__("h5py").ExternalLink(str(target), "/y")
    return make


def virtual_x(source: Path, n: int):
    import h5py

    def make(f):
        del f["x"]
        layout = h5py.VirtualLayout(shape=(n, 4), dtype="float32")
        layout[:] = h5py.VirtualSource(str(source), "x", shape=(n, 4))
        f.create_virtual_dataset("x", layout)
    return make


def soft_link_y(f):
    f["stash/y"] = f["y"][()]
    del f["y"]
    f["y"] = __import__("h5py").SoftLink("/stash/y")


def _source(tmp_path: Path, arrays: dict[str, np.ndarray]) -> Path:
    """Another HDF5 file holding the 'real' arrays (what a link or VDS would pull in)."""
    return write_h5(tmp_path / "elsewhere.h5", arrays, lambda f: None)


def _hostile_cases(tmp_path: Path) -> dict[str, tuple[Path, str]]:
    arrays = data_arrays()
    n = len(arrays["x"])
    secret = secret_file(tmp_path)
    source = _source(tmp_path, arrays)
    return {
        "external storage": (write_h5(tmp_path / "external.h5", arrays, external_x(secret, n)), "'x'"),
        "external link": (write_h5(tmp_path / "elink.h5", arrays, external_link_y(source)), "'y'"),
        "virtual dataset": (write_h5(tmp_path / "vds.h5", arrays, virtual_x(source, n)), "'x'"),
        "soft link": (write_h5(tmp_path / "soft.h5", arrays, soft_link_y), "'y'"),
    }


@pytest.mark.parametrize("command", [["compare"], ["breakdown", "--per-sample"]])
def test_hostile_h5_data_is_refused_before_it_is_read(tmp_path, command):
    for label, (data, name) in _hostile_cases(tmp_path).items():
        for fmt in ("table", "json"):
            res = run_cli(*command, MODEL, data, "--format", fmt)
            line = assert_refused(res, data.name, name)
            assert "never" in line, (label, line)
            assert SECRET.decode() not in res.stdout + res.stderr, label
            assert res.stdout == "", label


def test_self_contained_h5_data_still_works(tmp_path):
    """The same arrays stored in the file itself, and a group holding unrelated hard-linked data, are read."""
    arrays = data_arrays()

    def extra(f):
        f["notes/copy"] = arrays["x"][:3]
        f["notes/again"] = f["notes/copy"]  # a second hard link to the same dataset

    data = write_h5(tmp_path / "plain.h5", arrays, extra)
    res = run_cli("breakdown", "--per-sample", MODEL, data, "--format", "json")
    assert res.code in (0, 1), res.stderr


def _copy_h5_model(tmp_path: Path, hostile) -> Path:
    import h5py

    path = tmp_path / "model.h5"
    shutil.copy(MODEL, path)
    with h5py.File(path, "r+") as f:
        hostile(f)
    return path


def test_hostile_h5_model_is_refused(tmp_path):
    """The model's own datasets (weights, optimizer state) are walked before Keras or losscheck reads them."""
    import h5py

    secret = secret_file(tmp_path)

    def external_optimizer_state(f):
        group = f.require_group("optimizer_weights")
        group.create_dataset("stolen", shape=(1024,), dtype="uint8", external=[(str(secret), 0, 1024)])
        group.attrs["weight_names"] = [b"stolen"]

    def linked_weights(f):
        f["model_weights/evil"] = h5py.ExternalLink(str(secret), "/x")

    for hostile, name in ((external_optimizer_state, "optimizer_weights/stolen"),
                          (linked_weights, "model_weights/evil")):
        model = _copy_h5_model(tmp_path, hostile)
        for command in (["inspect", model], ["compare", model, K3 / "mse_str.npz"]):
            res = run_cli(*command)
            assert_refused(res, "model.h5", name)
            assert SECRET.decode() not in res.stdout + res.stderr
        model.unlink()


def test_hostile_weights_inside_a_keras_archive_are_refused(tmp_path):
    """The .keras archive's model.weights.h5 is walked too (losscheck reads the optimizer state from it)."""
    import h5py

    secret = secret_file(tmp_path)
    inner = tmp_path / "model.weights.h5"
    with zipfile.ZipFile(KERAS_MODEL) as zf:
        inner.write_bytes(zf.read("model.weights.h5"))
        members = {n: zf.read(n) for n in zf.namelist() if n != "model.weights.h5"}
    with h5py.File(inner, "r+") as f:
        f.create_dataset("optimizer/vars/99", shape=(64,), dtype="uint8", external=[(str(secret), 0, 64)])
    hostile = tmp_path / "hostile.keras"
    with zipfile.ZipFile(hostile, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
        zf.write(inner, "model.weights.h5")
    res = run_cli("inspect", hostile)
    assert_refused(res, "hostile.keras", "optimizer/vars/99", "external file")
    assert SECRET.decode() not in res.stdout + res.stderr


def test_h5_model_dataset_declaring_far_more_than_it_stores_is_refused(tmp_path):
    """Keras reads a model's weights whole: a dataset of 1 GiB served from its fill value is a bomb."""
    def huge(f):
        f["model_weights"].create_dataset("huge", shape=(1 << 28,), dtype="float32", chunks=(1 << 16,))

    res = run_cli("inspect", _copy_h5_model(tmp_path, huge))
    assert_refused(res, "model.h5", "model_weights/huge", "declares 1 GiB", "bomb")


def test_compressed_chunks_too_large_to_unpack_are_refused(tmp_path):
    """One gzip chunk of 512 MiB of zeros (~0.5 MB on disk) would be unpacked whole to read one row."""
    import h5py

    arrays = data_arrays()
    n = len(arrays["x"])
    path = tmp_path / "bigchunk.h5"
    with h5py.File(path, "w") as f:
        f["y"] = arrays["y"]
        f.create_dataset("x", shape=(n, 4), dtype="float32", data=arrays["x"], chunks=(n, 4), compression="gzip")
        f.create_dataset("spare", shape=(1 << 27,), dtype="float32", chunks=(1 << 27,), compression="gzip")
    res = run_cli("compare", MODEL, path)
    assert_refused(res, "bigchunk.h5", "'spare'", "chunks of 512 MiB")
