"""Issue 6: h5 data is read batch by batch, never whole. A compare run under an address-space limit
(RLIMIT_AS) succeeds on an h5 dataset several times larger than that limit.

TensorFlow alone reserves about 2.6 GB of address space in a small run (VmPeak; resident memory is
~0.6 GB; more with more cores, for thread stacks), so the cap is measured: the VmPeak of the same run
on a small file, plus HEADROOM_GB. The dataset is made larger than MULTIPLE x the cap without filling a
disk: its chunks are never written, so HDF5 serves them from the dataset's fill value (a file of a
few kB that reads as many GB). A control in the same capped process shows that reading the dataset
whole fails there (MemoryError), so the cap really bites."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT

pytestmark = [pytest.mark.keras, pytest.mark.slow]

HEADROOM_GB = 0.75
MULTIPLE = 3
FEATURES = 4096  # 16 KiB per float32 sample

CAPPED = """
import atexit, resource, sys
cap = int({cap})
if cap:
    resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
def peak():
    for line in open("/proc/self/status"):
        if line.startswith("VmPeak"):
            sys.stderr.write("\\n" + line)
atexit.register(peak)
{body}
"""
CLI = "from losscheck.cli import main\nsys.argv = ['losscheck'] + sys.argv[1:]\nmain()"


def capped(cap: int, body: str, *args: str) -> subprocess.CompletedProcess:
    code = CAPPED.format(cap=cap, body=body)
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, cwd=ROOT,
                          timeout=900)


def vm_peak(res: subprocess.CompletedProcess) -> int:
    line = [ln for ln in res.stderr.splitlines() if ln.startswith("VmPeak")][-1]
    return int(line.split()[1]) * 1024


def build_data(path: Path, n: int) -> Path:
    import h5py

    with h5py.File(path, "w") as f:  # chunks never written: read back as the fill value
        f.create_dataset("x", shape=(n, FEATURES), dtype="float32", chunks=(min(n, 256), FEATURES), fillvalue=0.01)
        f.create_dataset("y", shape=(n, 1), dtype="float32", chunks=(min(n, 65536), 1), fillvalue=1.0)
    return path


def build_model(tmp: Path) -> Path:
    import keras

    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((FEATURES,), name="x"), keras.layers.Dense(1, name="out")])
    model.compile("sgd", "mse")
    model.save(tmp / "model.keras")
    return tmp / "model.keras"


def test_h5_larger_than_the_address_space_cap(tmp_path):
    model = build_model(tmp_path)
    args = ("--batch-size", "2048", "--format", "json")
    small = capped(0, CLI, "compare", str(model), str(build_data(tmp_path / "small.h5", 4096)), *args)
    assert small.returncode in (0, 1), small.stderr[-2000:]
    cap = vm_peak(small) + int(HEADROOM_GB * 2**30)
    n = int(MULTIPLE * cap / (FEATURES * 4)) + 1
    data = build_data(tmp_path / "big.h5", n)
    assert data.stat().st_size < 10 * 2**20

    control = capped(cap, "import h5py\nh5py.File(sys.argv[1], 'r')['x'][:]\nprint('read whole')", str(data))
    assert control.returncode != 0 and "MemoryError" in control.stderr, control.stdout + control.stderr[-500:]

    res = capped(cap, CLI, "compare", str(model), str(data), *args)
    assert res.returncode in (0, 1), res.stderr[-2000:]
    out = json.loads(res.stdout)
    assert out["data"]["samples"] == n and n * FEATURES * 4 > MULTIPLE * cap
    assert "evaluate" in out["figures"] and "fit_epoch" in out["figures"]
    assert vm_peak(res) <= cap
