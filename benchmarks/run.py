"""Benchmark runner: losscheck compare vs the hand-written baseline, the LossCheck callback's cost, memory
and linearity.

    python benchmarks/run.py [--reps 5] [--skip-timing] [--skip-callback] [--skip-memory] [--n 2048]
                             [--backends tensorflow,jax]

1. Time: the baseline (benchmarks/baseline.py: load, evaluate, predict + numpy loss, fit on a second
   copy) and `losscheck compare MODEL DATA --batch-size 64 --format json` (all figures, report thrown
   away) on the bench scenario, interleaved in the same run (A B, then B A, ...) so drifting machine
   load hits both alike. Prints every wall time, the medians and the median of the pairwise ratios.
2. Callback: benchmarks/fit_callback.py fits the bench model for 3 epochs (batch 64, shuffle=False)
   without and with `LossCheck` at its default settings (a check after every epoch on all the data),
   interleaved like the timing; each process prints the seconds of its fit call alone (imports and
   loading are not timed). Prints the median pairwise ratio (target <= CALLBACK_TARGET).
3. Memory: `losscheck compare` on an .h5 data file of N and of 4N samples; peak RSS of the process
   (getrusage of the finished child) must grow by less than 10 %.
   With --backends, the timing runs once per Keras backend (KERAS_BACKEND set for both commands),
   one row each: the ratio to the hand-written baseline on that backend.
4. Linearity: the wall times of those two runs; the cost of each extra sample at 4N must not exceed
   the average cost per sample at N (no super-linear growth).

The scenario is built on first use (benchmarks/build_bench.py, seeded) under benchmarks/scratch/.
Exit status 0 when every check passes, 1 otherwise. Both commands run in this process's environment:
set variables (TF_ENABLE_ONEDNN_OPTS, ...) before the call to apply them to both.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import build_bench  # noqa: E402

TARGET_RATIO = 1.0
#: fit with LossCheck at its defaults / fit without it, 3 epochs of the bench scenario
CALLBACK_TARGET = 1.25
CALLBACK_EPOCHS = 3
MAX_RSS_GROWTH = 0.10


def losscheck_cmd() -> list[str]:
    """The installed console script beside this Python, else `python -m losscheck`."""
    script = Path(sys.executable).with_name("losscheck")
    return [str(script)] if script.exists() else [sys.executable, "-m", "losscheck"]


def run(cmd: list[str], backend: str | None = None) -> tuple[float, float, int]:
    """Run cmd to completion (with KERAS_BACKEND=backend when given), output discarded. Returns (wall
    seconds, cpu seconds, peak RSS MiB)."""
    env = {**os.environ, "KERAS_BACKEND": backend} if backend else None
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
    if proc.returncode not in (0, 1):
        raise SystemExit(f"command failed ({proc.returncode}): {' '.join(cmd)}\n{err[-2000:]}")
    return wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss // 1024


def compare_cmd(model: Path, data: Path, batch: int) -> list[str]:
    return [*losscheck_cmd(), "compare", str(model), str(data), "--batch-size", str(batch), "--format", "json"]


def baseline_cmd(model: Path, data: Path, batch: int) -> list[str]:
    return [sys.executable, str(HERE / "baseline.py"), str(model), str(data), "--batch-size", str(batch)]


def machine() -> str:
    load = os.getloadavg()
    return (f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
            f"load average {load[0]:.1f}/{load[1]:.1f}/{load[2]:.1f}, "
            f"TF_ENABLE_ONEDNN_OPTS={os.environ.get('TF_ENABLE_ONEDNN_OPTS', '(unset)')}")


def timing(scratch: Path, reps: int, batch: int, backend: str | None = None) -> tuple[bool, float]:
    """(pass, median pairwise ratio) of losscheck vs the baseline, both on `backend` (None: the default)."""
    model, data = scratch / "model.keras", scratch / "data.npz"
    lc, base = compare_cmd(model, data, batch), baseline_cmd(model, data, batch)
    on = f" on the {backend} backend" if backend else ""
    print(f"timing {reps} interleaved repetitions on {data.name} ({build_bench.N_DEFAULT} samples, batch {batch}){on}")
    print(f"  losscheck: {' '.join(lc)}\n  baseline:  {' '.join(base)}")
    run(lc[:1] + ["--version"])  # warm the file cache for both
    t_lc, t_base, ratios, cpu_ratios = [], [], [], []
    for i in range(reps):
        order = [("baseline", base), ("losscheck", lc)] if i % 2 == 0 else [("losscheck", lc), ("baseline", base)]
        got = {}
        for name, cmd in order:
            got[name] = run(cmd, backend)
        t_base.append(got["baseline"][0])
        t_lc.append(got["losscheck"][0])
        ratios.append(t_lc[-1] / t_base[-1])
        cpu_ratios.append(got["losscheck"][1] / got["baseline"][1])
        print(f"  rep {i + 1}: baseline {t_base[-1]:6.2f} s (cpu {got['baseline'][1]:6.2f})   "
              f"losscheck {t_lc[-1]:6.2f} s (cpu {got['losscheck'][1]:6.2f})   ratio {ratios[-1]:.3f}", flush=True)
    med_ratio = statistics.median(ratios)
    print(f"  median: baseline {statistics.median(t_base):.2f} s, losscheck {statistics.median(t_lc):.2f} s; "
          f"ratio of medians {statistics.median(t_lc) / statistics.median(t_base):.3f}, "
          f"median pairwise ratio {med_ratio:.3f} (target <= {TARGET_RATIO}); "
          f"median pairwise CPU-time ratio {statistics.median(cpu_ratios):.3f} (less sensitive to other load)")
    ok = med_ratio <= TARGET_RATIO
    print(f"  {'PASS' if ok else 'FAIL'}: ratio {med_ratio:.3f}")
    return ok, med_ratio


def fit_seconds(cmd: list[str], backend: str | None = None) -> tuple[float, float]:
    """(wall, CPU) seconds of the fit call, as cmd prints them."""
    env = {**os.environ, "KERAS_BACKEND": backend} if backend else None
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        raise SystemExit(f"command failed ({proc.returncode}): {' '.join(cmd)}\n{proc.stderr[-2000:]}")
    line = next(ln for ln in proc.stdout.splitlines() if ln.startswith("fit_seconds "))
    parts = line.split()
    return float(parts[1]), float(parts[3])


def callback_timing(scratch: Path, reps: int, batch: int, backend: str | None = None,
                    on: str = "epoch_end") -> tuple[bool, float]:
    """(pass, median pairwise ratio) of fit with LossCheck at its defaults (`on` aside) vs fit without it."""
    model, data = scratch / "model.keras", scratch / "data.npz"
    plain = [sys.executable, str(HERE / "fit_callback.py"), str(model), str(data), "--epochs", str(CALLBACK_EPOCHS),
             "--batch-size", str(batch)]
    with_lc = [*plain, "--losscheck", "--on", on]
    where = f" on the {backend} backend" if backend else ""
    checks = "a check after every epoch" if on == "epoch_end" else "one check after training"
    print(f"callback: fit {CALLBACK_EPOCHS} epochs without / with LossCheck (on={on!r}: {checks}), "
          f"{reps} interleaved repetitions{where}; the fit call's seconds")
    t_plain, t_lc, ratios, cpu_ratios = [], [], [], []
    for i in range(reps):
        order = [("plain", plain), ("losscheck", with_lc)] if i % 2 == 0 else [("losscheck", with_lc), ("plain", plain)]
        got = {name: fit_seconds(cmd, backend) for name, cmd in order}
        t_plain.append(got["plain"][0])
        t_lc.append(got["losscheck"][0])
        ratios.append(t_lc[-1] / t_plain[-1])
        cpu_ratios.append(got["losscheck"][1] / got["plain"][1])
        print(f"  rep {i + 1}: fit {t_plain[-1]:6.2f} s (cpu {got['plain'][1]:6.2f})   "
              f"with LossCheck {t_lc[-1]:6.2f} s (cpu {got['losscheck'][1]:6.2f})   ratio {ratios[-1]:.3f}", flush=True)
    med = statistics.median(ratios)
    print(f"  median: fit {statistics.median(t_plain):.2f} s, with LossCheck {statistics.median(t_lc):.2f} s; "
          f"median pairwise ratio {med:.3f} (min {min(ratios):.3f}, max {max(ratios):.3f}; "
          f"target <= {CALLBACK_TARGET}); "
          f"median pairwise CPU-time ratio {statistics.median(cpu_ratios):.3f}")
    ok = med <= CALLBACK_TARGET
    print(f"  {'PASS' if ok else 'FAIL'}: callback ratio {med:.3f}")
    return ok, med


def memory_and_linearity(scratch: Path, n: int, batch: int) -> bool:
    model = scratch / "model.keras"
    sizes = (n, 4 * n)
    results = {}
    for size in sizes:
        path = scratch / f"data_{size}.h5"
        if not path.exists():
            build_bench.write_h5(path, size)
        wall, cpu, rss = run(compare_cmd(model, path, batch))
        results[size] = (wall, cpu, rss)
        print(f"  {path.name}: {size} samples, wall {wall:.2f} s, cpu {cpu:.2f} s, peak RSS {rss} MiB", flush=True)
    (w1, _, r1), (w4, _, r4) = results[sizes[0]], results[sizes[1]]
    growth = r4 / r1 - 1
    mem_ok = growth < MAX_RSS_GROWTH
    print(f"  {'PASS' if mem_ok else 'FAIL'}: memory: 4x the samples, peak RSS {r1} -> {r4} MiB "
          f"({growth * 100:+.1f} %, bound < {MAX_RSS_GROWTH * 100:.0f} %)")
    avg = w1 / sizes[0]
    marginal = (w4 - w1) / (sizes[1] - sizes[0])
    fixed = w1 - marginal * sizes[0]
    lin_ok = marginal <= avg * 1.05  # 5 % slack for noise
    print(f"  {'PASS' if lin_ok else 'FAIL'}: linearity: {w1:.2f} s at {sizes[0]}, {w4:.2f} s at {sizes[1]} "
          f"(x{w4 / w1:.2f} for x4 samples): {marginal * 1e3:.2f} ms per extra sample vs {avg * 1e3:.2f} ms "
          f"per sample at {sizes[0]}; fits t = {fixed:.1f} s + {marginal * 1e3:.2f} ms x samples")
    return mem_ok and lin_ok


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=5, help="interleaved repetitions of each command (default 5)")
    ap.add_argument("--n", type=int, default=build_bench.N_DEFAULT, help="samples N of the memory check (and 4N)")
    ap.add_argument("--skip-timing", action="store_true")
    ap.add_argument("--skip-callback", action="store_true")
    ap.add_argument("--callback-on", default="train_end", choices=["epoch_end", "train_end"],
                    help="LossCheck's on= in the callback row (default: its default, train_end)")
    ap.add_argument("--skip-memory", action="store_true")
    ap.add_argument("--backends", default="",
                    help="comma-separated Keras backends to time on, one row each (e.g. tensorflow,jax); "
                         "default: KERAS_BACKEND or Keras's default")
    args = ap.parse_args()

    scratch = build_bench.SCRATCH
    if not (scratch / "model.keras").exists() or not (scratch / "data.npz").exists():
        print("building the bench scenario (benchmarks/build_bench.py) ...", flush=True)
        subprocess.run([sys.executable, str(HERE / "build_bench.py")], check=True, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)
    if shutil.which("losscheck") is None and not Path(sys.executable).with_name("losscheck").exists():
        print("note: no losscheck console script beside this Python; using python -m losscheck")
    print(f"machine: {machine()}")
    ok = True
    if not args.skip_timing:
        backends = [b.strip() for b in args.backends.split(",") if b.strip()] or [None]
        rows = []
        for backend in backends:
            passed, ratio = timing(scratch, args.reps, build_bench.BATCH, backend)
            ok &= passed
            rows.append((backend or os.environ.get("KERAS_BACKEND", "default"), ratio, passed))
        if len(rows) > 1:
            print("backend      ratio to baseline")
            for name, ratio, passed in rows:
                print(f"  {name:<10} {ratio:6.3f}  {'PASS' if passed else 'FAIL'}")
    if not args.skip_callback:
        for backend in [b.strip() for b in args.backends.split(",") if b.strip()] or [None]:
            passed, _ = callback_timing(scratch, args.reps, build_bench.BATCH, backend, args.callback_on)
            ok &= passed
    if not args.skip_memory:
        print(f"memory and linearity (.h5 data, {args.n} and {4 * args.n} samples)")
        ok &= memory_and_linearity(scratch, args.n, build_bench.BATCH)
    print(f"machine at the end: {machine()}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
