"""--distribute multi-process --local 2 on CPU (JAX): Keras's own evaluate and fit over two processes
equal Keras's own one-process numbers (Dense, BatchNormalization + Dropout, sample weights), the shards'
numpy sums add up to the one-process data loss, only process 0 writes the report; 100 samples at batch
32 are uneven-shards before any pass; a custom loss dividing by a fixed batch size gets
distribution-scaling; a killed worker ends the run with exit 2; nothing is left running."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from losscheck.core.shards import shard_plan, uneven_message
from tests.conftest import ROOT, fixture_files, rel

MULTI = [pytest.mark.keras, pytest.mark.jax, pytest.mark.slow]

RTOL = 1e-6
ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "KERAS_BACKEND": "jax"}


def _jax_or_skip() -> None:
    import importlib.util

    if importlib.util.find_spec("jax") is None:
        pytest.skip("jax is not installed")


def _losscheck(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "losscheck", *map(str, args)], cwd=ROOT, env=ENV,
                          capture_output=True, text=True, timeout=timeout)


def _python_on_jax(code: str, *args: object) -> str:
    """The last line `python -c code args...` prints, run on the JAX backend; it must succeed."""
    done = subprocess.run([sys.executable, "-c", code, *map(str, args)], cwd=ROOT, env=ENV, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    lines = done.stdout.strip().splitlines()
    return lines[-1] if lines else ""


def _keras_one_process(model: Path, data: Path, batch_size: int) -> tuple[float, float]:
    """Keras's own evaluate and one-epoch fit in one process on JAX (a subprocess), seeded as losscheck's
    --seed 0 (before loading and before fit, so Dropout draws the same masks)."""
    code = (
        "import sys, json, numpy as np, keras\n"
        "d = np.load(sys.argv[2]); sw = d['sample_weight'] if 'sample_weight' in d.files else None\n"
        "b = int(sys.argv[3])\n"
        "ev = keras.saving.load_model(sys.argv[1]).evaluate(d['x'], d['y'], sample_weight=sw, batch_size=b, "
        "verbose=0)\n"
        "keras.utils.set_random_seed(0); model = keras.saving.load_model(sys.argv[1]); keras.utils.set_random_seed(0)\n"
        "fit = model.fit(d['x'], d['y'], sample_weight=sw, batch_size=b, epochs=1, "
        "shuffle=False, verbose=0).history['loss'][0]\n"
        "print(json.dumps([float(ev), float(fit)]))\n")
    ev, fit = json.loads(_python_on_jax(code, model, data, batch_size))
    return ev, fit


def _bn_dropout(folder: Path) -> tuple[Path, Path]:
    """A small keras-io-style classifier head: Dense -> BatchNormalization -> relu -> Dropout -> softmax,
    trained for one epoch (moving statistics and optimizer state saved), seeded."""
    code = (
        "import sys, numpy as np, keras\n"
        "keras.utils.set_random_seed(7); rng = np.random.default_rng(7)\n"
        "x = rng.normal(1.0, 2.0, size=(64, 6)).astype('float32'); y = (x[:, 0] + x[:, 1] > 2).astype('int32')\n"
        "L = keras.layers\n"
        "m = keras.Sequential([keras.Input((6,)), L.Dense(8), L.BatchNormalization(), L.Activation('relu'), "
        "L.Dropout(0.3), L.Dense(2, activation='softmax')])\n"
        "m.compile(keras.optimizers.Adam(0.01), 'sparse_categorical_crossentropy')\n"
        "m.fit(x, y, batch_size=16, epochs=1, verbose=0)\n"
        "m.save(sys.argv[1] + '/model.keras'); np.savez(sys.argv[1] + '/data.npz', x=x, y=y)\n")
    _python_on_jax(code, folder)
    return folder / "model.keras", folder / "data.npz"


def _children_of(pid: int) -> list[int]:
    """Every live descendant of `pid` (from /proc)."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[0] != "Z":
            parents[int(entry.name)] = int(fields[1])
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        kids = [c for c, parent in parents.items() if parent == p]
        out += kids
        todo += kids
    return out


def _workers_alive(marker: str) -> list[int]:
    """Live processes whose command line holds `marker` (this test's own data path)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmd = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if marker in cmd and "--process-id" in cmd and state != "Z":
            found.append(int(entry.name))
    return found


def test_shard_plan_deals_batches_as_keras_does():
    """Keras rebatches to B / P and deals the batches out in turn: 100 at 32 over 2 is 52/48 samples."""
    plan = shard_plan(100, 32, 2)
    assert not plan.even
    assert plan.per_process == ((52, 4, (16, 16, 16, 4)), (48, 3, (16, 16, 16)))
    what, todo = uneven_message(plan)
    assert "process 0" in what and "wait forever" in what and "96 samples" in what
    assert "multiple of 32" in todo
    assert shard_plan(96, 32, 2).even
    assert [list(r) for r in shard_plan(64, 32, 2).shard_indices(1)] == [list(range(16, 32)), list(range(48, 64))]
    assert not shard_plan(96, 32, 3).divisible and "multiple of the 3 processes" in uneven_message(
        shard_plan(96, 32, 3))[0]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """One --local 2 run per model (JSON), with Keras's own one-process numbers."""
    _jax_or_skip()
    tmp = tmp_path_factory.mktemp("multiprocess")
    bn_model, bn_data = _bn_dropout(tmp)
    cases = {"dense": (*fixture_files("dense_story4"), 32), "bn_dropout": (bn_model, bn_data, 16),
             "sample_weights": (*fixture_files("sample_weights"), 30)}
    out = {}
    for name, (model, data, batch) in cases.items():
        report = tmp / f"{name}.json"
        done = _losscheck("compare", model, data, "--batch-size", batch, "--distribute", "multi-process",
                          "--local", 2, "--format", "json", "--output", report)
        out[name] = (done, json.loads(report.read_text()) if report.exists() else None,
                     _keras_one_process(model, data, batch), data)
    return out


@pytest.mark.parametrize("name", ["dense", "bn_dropout", "sample_weights"])
@MULTI[0]
@MULTI[1]
@MULTI[2]
def test_two_processes_give_keras_one_process_figures(runs, name):
    done, report, (keras_evaluate, keras_fit), data = runs[name]
    assert done.returncode in (0, 1), done.stderr[-2000:]
    assert report is not None and done.stdout == ""  # --output: process 0 writes the file, nobody stdout
    fig = {k: v["value"] for k, v in report["figures"].items()}
    assert rel(fig["evaluate_multiprocess"], keras_evaluate) < RTOL
    assert rel(fig["fit_epoch_multiprocess"], keras_fit) < RTOL
    assert rel(fig["evaluate"], keras_evaluate) < 1e-5
    codes = {f["code"] for f in report["findings"]}
    assert not codes & {"replica-aggregation", "worker-disagreement", "uneven-shards", "distribution-scaling"}
    shards = report["shards"]
    assert [s["process"] for s in shards] == [0, 1]
    with np.load(data) as d:
        n = d["x"].shape[0]
        weights = d["sample_weight"] if "sample_weight" in d.files else np.ones(n)
    assert sum(s["samples"] for s in shards) == n
    assert shards[0]["steps"] == shards[1]["steps"]
    if "manual_multiprocess" in fig:
        assert rel(sum(s["loss_sum"] for s in shards) / n, fig["manual"]) < 1e-9
        assert rel(sum(s["weight_sum"] for s in shards), float(np.sum(weights, dtype=np.float64))) < 1e-9


@MULTI[0]
@MULTI[1]
@MULTI[2]
def test_uneven_shards_before_any_pass(tmp_path):
    """100 samples at batch 32 over 2 processes: uneven-shards (exit 1), no figure, well under 60 s, no worker left."""
    _jax_or_skip()
    model, data = fixture_files("dense_story4")
    with np.load(data) as d:
        np.savez(tmp_path / "data100.npz", x=np.concatenate([d["x"], d["x"][:4]]),
                 y=np.concatenate([d["y"], d["y"][:4]]))
    start = time.monotonic()
    done = _losscheck("compare", model, tmp_path / "data100.npz", "--distribute", "multi-process", "--local", 2,
                      "--format", "json", timeout=120)
    took = time.monotonic() - start
    assert done.returncode == 1, done.stderr[-2000:]
    assert took < 60
    report = json.loads(done.stdout)
    (finding,) = [f for f in report["findings"] if f["code"] == "uneven-shards"]
    assert finding["severity"] == "error" and finding["magnitude"] == 4
    assert "process 0" in finding["message"] and "process 1" in finding["message"]
    assert "multiple of 32" in finding["advice"]
    assert report["figures"] == {}
    assert [s["samples"] for s in report["shards"]] == [52, 48]
    assert _workers_alive(str(tmp_path)) == []


FIXED_DIVISOR_LOSS = '''
import keras


@keras.saving.register_keras_serializable(package="lc_multiprocess")
def fixed_batch_mse(y_true, y_pred):
    """Sum of squares over a hard-coded batch of 32: wrong on any other batch."""
    return keras.ops.sum(keras.ops.square(y_true - y_pred)) / 32.0
'''


@MULTI[0]
@MULTI[1]
@MULTI[2]
def test_a_fixed_divisor_loss_gets_distribution_scaling(tmp_path):
    """A custom loss dividing by a fixed batch of 32: JAX computes it on the global batch, so Keras's fit
    over two processes equals Keras's own one-process fit, and distribution-scaling says that a per-worker
    strategy would scale it."""
    _jax_or_skip()
    (tmp_path / "losses.py").write_text(FIXED_DIVISOR_LOSS)
    code = ("import sys, numpy as np, keras\n"
            "sys.path.insert(0, sys.argv[1]); import losses\n"
            "rng = np.random.default_rng(5); keras.utils.set_random_seed(5)\n"
            "x = rng.normal(size=(128, 4)).astype('float32')\n"
            "y = (x @ rng.normal(size=(4, 1)) + 0.1 * rng.normal(size=(128, 1))).astype('float32')\n"
            "inp = keras.Input((4,)); m = keras.Model(inp, keras.layers.Dense(1)(inp))\n"
            "m.compile(keras.optimizers.SGD(0.05), losses.fixed_batch_mse)\n"
            "m.save(sys.argv[1] + '/model.keras'); np.savez(sys.argv[1] + '/data.npz', x=x, y=y)\n"
            "fit = keras.saving.load_model(sys.argv[1] + '/model.keras').fit(x, y, batch_size=32, epochs=1, "
            "shuffle=False, verbose=0).history['loss'][0]\n"
            "print(float(fit))\n")
    keras_fit = float(_python_on_jax(code, tmp_path))
    report = tmp_path / "report.json"
    done = _losscheck("compare", tmp_path / "model.keras", tmp_path / "data.npz", "--custom-objects",
                      tmp_path / "losses.py", "--batch-size", 32, "--distribute", "multi-process", "--local", 2,
                      "--format", "json", "--output", report)
    assert done.returncode == 1, done.stderr[-2000:]
    doc = json.loads(report.read_text())
    fig = {k: v["value"] for k, v in doc["figures"].items()}
    assert rel(fig["fit_epoch_multiprocess"], keras_fit) < RTOL
    assert rel(fig["fit_epoch"], keras_fit) < RTOL
    found = [f for f in doc["findings"] if f["code"] == "distribution-scaling"]
    assert len(found) == 1 and "MultiWorkerMirroredStrategy" in found[0]["message"]
    assert "batch-size-dependence" in {f["code"] for f in doc["findings"]}
    assert _workers_alive(str(tmp_path)) == []


def _launch_and_find_worker(tmp_path: Path, process: int) -> tuple[subprocess.Popen, int]:
    """A --local 2 launcher on a copy of dense_story4's data in tmp_path, and the pid of worker `process`
    once it has run a few seconds (loading, joining)."""
    model, data = fixture_files("dense_story4")
    local = tmp_path / "data.npz"
    local.write_bytes(Path(data).read_bytes())
    launcher = subprocess.Popen([sys.executable, "-m", "losscheck", "compare", str(model), str(local),
                                 "--distribute", "multi-process", "--local", "2"], cwd=ROOT, env=ENV,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and launcher.poll() is None:
        for pid in _workers_alive(str(tmp_path)):
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            if cmd[cmd.index(b"--process-id") + 1] == str(process).encode():
                time.sleep(4)
                return launcher, pid
        time.sleep(0.2)
    launcher.kill()
    raise AssertionError(f"worker {process} never started")


@MULTI[0]
@MULTI[1]
@MULTI[2]
def test_killed_worker_ends_the_run(tmp_path):
    """SIGKILL to worker 1 mid-run: exit 2 naming it, and no process of the run is left."""
    _jax_or_skip()
    launcher, victim = _launch_and_find_worker(tmp_path, 1)
    try:
        os.kill(victim, signal.SIGKILL)
        _, err = launcher.communicate(timeout=60)
    finally:
        if launcher.poll() is None:
            launcher.kill()
    assert launcher.returncode == 2, err[-2000:]
    assert "worker 1" in err and "SIGKILL" in err
    time.sleep(0.5)
    assert _workers_alive(str(tmp_path)) == []
    assert _children_of(launcher.pid) == []


@MULTI[0]
@MULTI[1]
@MULTI[2]
def test_sigterm_on_the_launcher_leaves_nothing(tmp_path):
    """SIGTERM to the launcher mid-run: exit 143, every worker ended."""
    _jax_or_skip()
    launcher, _ = _launch_and_find_worker(tmp_path, 0)
    try:
        launcher.send_signal(signal.SIGTERM)
        _, err = launcher.communicate(timeout=60)
    finally:
        if launcher.poll() is None:
            launcher.kill()
    assert launcher.returncode == 143, err[-2000:]
    assert "every worker was stopped" in err
    time.sleep(0.5)
    assert _workers_alive(str(tmp_path)) == []


def test_tensorflow_backend_is_one_line():
    """On TensorFlow (MultiWorkerMirroredStrategy) one line naming the Keras issue, exit 2, nothing started."""
    model, data = fixture_files("dense_story4")
    done = _losscheck("compare", model, data, "--distribute", "multi-process", "--local", 2, "--backend",
                      "tensorflow", timeout=60)
    assert done.returncode == 2
    lines = [ln for ln in done.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "keras-team/keras#20585" in lines[0] and "Traceback" not in done.stderr


@pytest.mark.keras
@pytest.mark.jax
@pytest.mark.slow
def test_the_python_api_in_each_process():
    """losscheck.compare(..., distribute="multi-process", processes=(HOST:PORT, 2, I)) called in each of
    two processes: the same multi-process figures in both, equal to Keras's own one process."""
    _jax_or_skip()
    import socket

    model, data = fixture_files("dense_story4")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    code = ("import sys, json, losscheck\n"
            "r = losscheck.compare(sys.argv[1], sys.argv[2], distribute='multi-process', "
            "processes=(sys.argv[3], 2, int(sys.argv[4])))\n"
            "print('FIGURES', json.dumps({k: f.value for k, f in r.figures.items()}))\n")
    procs = [subprocess.Popen([sys.executable, "-c", code, str(model), str(data), f"127.0.0.1:{port}", str(i)],
                              cwd=ROOT, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for i in range(2)]
    try:
        outs = [p.communicate(timeout=300) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    figures = []
    for p, (out, err) in zip(procs, outs, strict=True):
        assert p.returncode == 0, err[-2000:]
        line = next(x for x in out.splitlines() if x.startswith("FIGURES "))
        figures.append(json.loads(line.split(" ", 1)[1]))
    assert figures[0] == figures[1]
    ev, fit = _keras_one_process(model, data, 32)
    assert rel(figures[0]["evaluate_multiprocess"], ev) < RTOL and rel(figures[0]["fit_epoch_multiprocess"], fit) < RTOL
