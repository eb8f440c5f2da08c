"""Decompression bombs and forged zip headers are refused before they are unpacked: exit 2, one line,
in under 30 s and under 2 GB peak memory (the CLI runs as a subprocess; its own peak RSS is read from
os.wait4). Bombs are built here, streamed through zipfile in 1 MiB chunks of zeros (a few hundred MB
declared, a few MB on disk). Honest archives (a real model re-zipped with deflate, compressed data)
still load."""

from __future__ import annotations

import io
import os
import struct
import subprocess
import sys
import time
import tracemalloc
import zipfile
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import ROOT, load_npz, run_cli
from tests.test_loading_models import K3, assert_refused

pytestmark = pytest.mark.keras

MODEL = K3 / "two_in.keras"
DATA_MODEL = K3 / "mse_str.h5"  # x (n, 4) -> out (n, 1)
MIB = 1 << 20
LIMIT_S, LIMIT_RSS = 30, 2 << 30
TRACED_LIMIT = 200 * MIB


def run_measured(*args) -> tuple[int, str, str, float, int]:
    """(exit code, stdout, stderr, seconds, peak RSS in bytes) of one CLI run in its own process."""
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    start = time.monotonic()
    proc = subprocess.Popen([sys.executable, "-m", "losscheck", *map(str, args)], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.monotonic() - start
    out, err = proc.stdout.read().decode(), proc.stderr.read().decode()
    proc.stdout.close()
    proc.stderr.close()
    proc.returncode = os.waitstatus_to_exitcode(status)
    return proc.returncode, out, err, seconds, usage.ru_maxrss * 1024


@pytest.fixture(autouse=True, scope="module")
def _imported():
    """TensorFlow and the commands imported before anything is traced (an import is not the bomb)."""
    import losscheck._entry.breakdown  # noqa: F401
    import losscheck.compare  # noqa: F401
    import losscheck.inspect  # noqa: F401
    import losscheck.loading.model  # noqa: F401


def assert_refused_fast(*args, phrase: str) -> str:
    """Exit 2 with one line, in under LIMIT_S, allocating (Python and numpy, traced) under TRACED_LIMIT:
    nothing was unpacked. Runs in-process; test_bombs_in_a_fresh_process measures real peak RSS."""
    tracemalloc.start()
    start = time.monotonic()
    try:
        res = run_cli(*args)
        seconds = time.monotonic() - start
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    line = assert_refused(res, phrase)
    assert seconds < LIMIT_S, seconds
    assert peak < TRACED_LIMIT, peak
    return line


def assert_refused_measured(*args, phrase: str) -> str:
    code, out, err, seconds, rss = run_measured(*args)
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and lines[0].startswith("losscheck: error: "), (code, err[-2000:])
    assert phrase in lines[0], lines[0]
    assert "Traceback" not in out + err
    assert seconds < LIMIT_S, seconds
    assert rss < LIMIT_RSS, rss
    return lines[0]


def zeros_member(zf: zipfile.ZipFile, name: str, mib: int, head: bytes = b"") -> None:
    chunk = bytes(MIB)
    with zf.open(name, "w", force_zip64=True) as fh:
        fh.write(head)
        for _ in range(mib):
            fh.write(chunk)


def keras_members() -> dict[str, bytes]:
    with zipfile.ZipFile(MODEL) as zf:
        return {n: zf.read(n) for n in zf.namelist()}


def bomb_keras(path: Path, weights_mib: int = 0, extra: int = 0, extra_mib: int = 0) -> Path:
    members = keras_members()
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1) as zf:
        zf.writestr("metadata.json", members["metadata.json"])
        zf.writestr("config.json", members["config.json"])
        if weights_mib:
            zeros_member(zf, "model.weights.h5", weights_mib, head=members["model.weights.h5"][:8])
        else:
            zf.writestr("model.weights.h5", members["model.weights.h5"])
        for i in range(extra):
            zeros_member(zf, f"assets/blob{i}.bin", extra_mib)
    return path


def test_keras_weights_bomb(tmp_path):
    path = bomb_keras(tmp_path / "bomb.keras", weights_mib=300)
    assert path.stat().st_size < 4 * MIB
    assert_refused_fast("inspect", path, phrase="decompression bomb")


def test_keras_with_many_large_members(tmp_path):
    """Each member below the per-member floor, together far over: nothing is unpacked into temp."""
    path = bomb_keras(tmp_path / "many.keras", extra=5, extra_mib=110)
    assert_refused_fast("inspect", path, phrase="members would unpack")


def _patch_central(path: Path, name: bytes, field_offset: int, value: int) -> None:
    """Overwrite a 4-byte field of `name`'s central-directory entry (16: CRC, 20: compressed size,
    24: uncompressed size)."""
    raw = bytearray(path.read_bytes())
    at = raw.find(b"PK\x01\x02")
    while at >= 0:
        name_len = struct.unpack("<H", raw[at + 28:at + 30])[0]
        if bytes(raw[at + 46:at + 46 + name_len]) == name:
            raw[at + field_offset:at + field_offset + 4] = struct.pack("<I", value)
            path.write_bytes(bytes(raw))
            return
        at = raw.find(b"PK\x01\x02", at + 4)
    raise AssertionError(f"{name!r} not in the central directory")


def _small_deflated_keras(path: Path, weights_mib: int) -> Path:
    """A .keras whose weights member is `weights_mib` MiB of deflated zeros, without zip64 fields."""
    members = keras_members()
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1) as zf:
        zf.writestr("metadata.json", members["metadata.json"])
        zf.writestr("config.json", members["config.json"])
        zf.writestr("model.weights.h5", members["model.weights.h5"][:8] + bytes(weights_mib * MIB))
    path.write_bytes(buffer.getvalue())
    return path


def test_forged_zip_headers(tmp_path):
    # declares 3.5 GiB for a member that stores a few kB: refused on the numbers alone
    liar = _small_deflated_keras(tmp_path / "declares_more.keras", 1)
    _patch_central(liar, b"model.weights.h5", 24, 3584 * MIB)
    assert_refused_fast("inspect", liar, phrase="decompression bomb")
    # declares 1 kB for a member that inflates to 64 MiB: zipfile stops at the declared size, the CRC fails
    under = _small_deflated_keras(tmp_path / "declares_less.keras", 64)
    _patch_central(under, b"model.weights.h5", 24, 1024)
    assert_refused_fast("inspect", under, phrase="damaged")
    # declares more stored bytes than the archive holds
    stored = _small_deflated_keras(tmp_path / "stored_more.keras", 1)
    _patch_central(stored, b"config.json", 20, 1 << 31)
    assert_refused_fast("inspect", stored, phrase="than the archive holds")
    # a bzip2 member (can expand without bound in one read) is refused whatever it declares
    bz = tmp_path / "bzip2.keras"
    members = keras_members()
    with zipfile.ZipFile(bz, "w", compression=zipfile.ZIP_BZIP2) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    assert_refused_fast("inspect", bz, phrase="bzip2")


def _npy_header(shape: tuple[int, ...], dtype: str = "<f4") -> bytes:
    from numpy.lib import format as npy

    buffer = io.BytesIO()
    npy.write_array_header_1_0(buffer, {"descr": dtype, "fortran_order": False, "shape": shape})
    return buffer.getvalue()


def test_npz_bombs(tmp_path):
    arrays = load_npz(K3 / "mse_str.npz")
    n = len(arrays["x"])
    # one deflated member of 300 MiB of zeros behind an honest .npy header
    bomb = tmp_path / "bomb.npz"
    with zipfile.ZipFile(bomb, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1) as zf:
        rows = 300 * MIB // 16
        zeros_member(zf, "x.npy", 300, head=_npy_header((rows, 4)))
        with zf.open("y.npy", "w") as fh:
            np.lib.format.write_array(fh, np.zeros((rows, 1), "float32"))
    assert bomb.stat().st_size < 4 * MIB
    assert_refused_fast("compare", DATA_MODEL, bomb, phrase="decompression bomb")
    # a header that declares 10^10 rows over a member of a few bytes
    forged = tmp_path / "forged.npz"
    with zipfile.ZipFile(forged, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("x.npy", _npy_header((10**10, 4)) + arrays["x"].tobytes())
        with zf.open("y.npy", "w") as fh:
            np.lib.format.write_array(fh, arrays["y"])
    line = assert_refused_fast("compare", DATA_MODEL, forged, phrase="'x' declares shape")
    assert "forged" in line
    # many members, each under the per-member floor
    many = tmp_path / "many.npz"
    with zipfile.ZipFile(many, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1) as zf:
        for key in ("x", "y", "sample_weight", "x_1", "x_2"):
            zeros_member(zf, f"{key}.npy", 110, head=_npy_header((110 * MIB // 4,)))
    assert_refused_fast("compare", DATA_MODEL, many, phrase="members would unpack")
    assert n > 0


def test_npz_larger_than_memory_is_refused_before_reading(tmp_path, monkeypatch):
    """An honest .npz that does not fit in memory: refused from its headers, pointing at .h5."""
    from losscheck.core.errors import DataFileError
    from losscheck.loading import data as data_module

    path = tmp_path / "honest.npz"
    np.savez(path, **load_npz(K3 / "mse_str.npz"))
    monkeypatch.setattr(data_module, "available_memory", lambda: 1024)
    with pytest.raises(DataFileError, match=r"need .* in memory.*\.h5"):
        data_module.load_data(path, ["x"], ["out"])


def test_honest_compressed_files_still_load(tmp_path):
    """A real model re-zipped with deflate (weights read through a temporary file) and savez_compressed
    data give the same report as the originals."""
    members = keras_members()
    deflated = tmp_path / "deflated.keras"
    with zipfile.ZipFile(deflated, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    data = tmp_path / "data.npz"
    np.savez_compressed(data, **load_npz(K3 / "two_in.npz"))
    original = run_cli("compare", MODEL, K3 / "two_in.npz", "--format", "json")
    again = run_cli("compare", deflated, data, "--format", "json")
    assert original.code in (0, 1), original.stderr
    assert again.code == original.code, again.stderr
    assert again.json["figures"] == original.json["figures"]


@pytest.mark.slow
def test_bombs_in_a_fresh_process(tmp_path):
    """Real time and peak RSS of a whole CLI run (TensorFlow included) on the two largest bombs."""
    keras_bomb = bomb_keras(tmp_path / "bomb.keras", weights_mib=600)
    assert_refused_measured("inspect", keras_bomb, phrase="decompression bomb")
    npz_bomb = tmp_path / "bomb.npz"
    with zipfile.ZipFile(npz_bomb, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1) as zf:
        zeros_member(zf, "x.npy", 600, head=_npy_header((600 * MIB // 16, 4)))
        zeros_member(zf, "y.npy", 150, head=_npy_header((600 * MIB // 16, 1)))
    assert_refused_measured("compare", DATA_MODEL, npz_bomb, phrase="decompression bomb")
