"""Issue 6 guarantee: random truncations and byte flips of real model and data files only ever give
exit 0, 1 or 2: never a traceback, never an internal error, never a hang; the file is never modified.
Default run: a modest seeded set; `-m slow` runs a larger one."""

from __future__ import annotations

import faulthandler
import signal
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import run_cli, sha256
from tests.test_loading_models import K3, TFK

pytestmark = pytest.mark.keras

HANG_SECONDS = 180
MODELS = [K3 / "mse_str.h5", K3 / "sparse.keras", TFK / "two_dict.h5", TFK / "rnn.h5"]
DATA_FOR = {"mse_str.h5": K3 / "mse_str.npz", "sparse.keras": K3 / "sparse.npz", "two_dict.h5": TFK / "two_dict.npz",
            "rnn.h5": TFK / "rnn.npz"}


class Hang(Exception):
    pass


def _alarm(_signum, _frame):
    raise Hang(f"no answer within {HANG_SECONDS} s")


def mutate(raw: bytes, rng: np.random.Generator) -> tuple[bytes, str]:
    kind = rng.integers(0, 3)
    if kind == 0:
        cut = int(rng.integers(1, len(raw)))
        return raw[:cut], f"truncated at {cut}"
    data = bytearray(raw)
    flips = int(rng.integers(1, 9)) if kind == 1 else int(rng.integers(20, 200))
    where = rng.integers(0, len(data), size=flips)
    for i in where:
        data[i] ^= int(rng.integers(1, 256))
    return bytes(data), f"{flips} bytes flipped"


def h5_copy(npz: Path, dst: Path) -> Path:
    import h5py

    with np.load(npz) as f, h5py.File(dst, "w") as h:
        for k in f.files:
            h.create_dataset(k, data=f[k], chunks=True)
    return dst


def run_case(i: int, tmp_path: Path) -> None:
    rng = np.random.default_rng(1000 + i)
    model = MODELS[i % len(MODELS)]
    data = DATA_FOR[model.name]
    target = ["model", "data npz", "data h5"][(i // len(MODELS)) % 3]
    if target == "model":
        src, other = model, data
    elif target == "data npz":
        src, other = data, model
    else:
        src, other = h5_copy(data, tmp_path / f"src{i}.h5"), model
    broken, how = mutate(src.read_bytes(), rng)
    bad = tmp_path / f"case{i}{src.suffix}"
    bad.write_bytes(broken)
    before = sha256(bad), sha256(other)
    args = ("compare", bad, other) if target == "model" else ("compare", other, bad)
    old = signal.signal(signal.SIGALRM, _alarm)
    signal.alarm(HANG_SECONDS)
    # backstop for a hang inside C code, where the alarm's Python handler never runs: dump and exit
    faulthandler.dump_traceback_later(2 * HANG_SECONDS, exit=True)
    try:
        res = run_cli(*args, "--format", "json")
    finally:
        faulthandler.cancel_dump_traceback_later()
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)
    where = f"case {i}: {src.name} {how}"
    assert res.code in (0, 1, 2), (where, res.code, res.stderr)
    assert "Traceback" not in res.stderr + res.stdout, where
    assert "internal error" not in res.stderr, (where, res.stderr)
    if res.code == 2:
        lines = res.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("losscheck: error: "), (where, res.stderr)
    assert (sha256(bad), sha256(other)) == before, where


@pytest.mark.parametrize("i", range(12))
def test_fuzz_small(i, tmp_path):
    run_case(i, tmp_path)


@pytest.mark.slow
@pytest.mark.parametrize("i", range(12, 132))
def test_fuzz_large(i, tmp_path):
    run_case(i, tmp_path)


# ----------------------------------------------------------------------------------------------
# Structured fuzz: archives and HDF5 files stay valid, the JSON configs inside them do not
# ----------------------------------------------------------------------------------------------
def _paths(node, prefix=()):
    yield prefix
    if isinstance(node, dict):
        for k, v in node.items():
            yield from _paths(v, (*prefix, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _paths(v, (*prefix, i))


def mutate_json(config, rng: np.random.Generator):
    import copy

    config = copy.deepcopy(config)
    paths = [p for p in _paths(config) if p]
    path = paths[int(rng.integers(0, len(paths)))]
    parent = config
    for key in path[:-1]:
        parent = parent[key]
    choice = int(rng.integers(0, 4))
    if choice == 0:
        del parent[path[-1]]
    else:
        parent[path[-1]] = [None, "garbage", -7, {"class_name": "Nope", "config": {}}][choice]
    return config, f"{'/'.join(map(str, path))} {'deleted' if choice == 0 else 'replaced'}"


def run_structured(i: int, tmp_path: Path) -> None:
    import json
    import zipfile

    import h5py

    rng = np.random.default_rng(5000 + i)
    src = [K3 / "sparse.keras", TFK / "two_dict.h5", TFK / "rnn.h5"][i % 3]
    bad = tmp_path / f"s{i}{src.suffix}"
    if src.suffix == ".keras":
        with zipfile.ZipFile(src) as zin, zipfile.ZipFile(bad, "w") as zout:
            for name in zin.namelist():
                data = zin.read(name)
                if name == "config.json":
                    config, how = mutate_json(json.loads(data), rng)
                    data = json.dumps(config).encode()
                zout.writestr(name, data)
    else:
        bad.write_bytes(src.read_bytes())
        attr = ["model_config", "training_config"][int(rng.integers(0, 2))]
        with h5py.File(bad, "r+") as f:
            value = f.attrs[attr]
            config, how = mutate_json(json.loads(value.decode() if isinstance(value, bytes) else value), rng)
            f.attrs[attr] = json.dumps(config)
        how = f"{attr}: {how}"
    before = sha256(bad)
    res = run_cli("compare", bad, DATA_FOR[src.name], "--format", "json")
    where = f"structured case {i}: {src.name} {how}"
    assert res.code in (0, 1, 2), (where, res.stderr)
    assert "Traceback" not in res.stderr + res.stdout, where
    assert "internal error" not in res.stderr, (where, res.stderr)
    if res.code == 2:
        lines = res.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("losscheck: error: "), (where, res.stderr)
    assert sha256(bad) == before, where


@pytest.mark.parametrize("i", range(6))
def test_fuzz_configs(i, tmp_path):
    run_structured(i, tmp_path)


@pytest.mark.slow
@pytest.mark.parametrize("i", range(6, 90))
def test_fuzz_configs_large(i, tmp_path):
    run_structured(i, tmp_path)
