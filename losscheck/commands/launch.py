"""`--distribute multi-process --local N`: start N worker processes on 127.0.0.1 and supervise them.

Each worker is `python -m losscheck compare ...` with the coordinator, the process count and its own id,
in a process group of its own (so that it, and anything it starts, can be ended as a whole). Process 0's
standard error is this process's (progress and its error line); its standard output is collected and
returned (only process 0 writes the report). A worker that dies, exits with an error, does not join the
coordinator in time, or keeps running `timeout` seconds after another one finished ends the run: every
worker still running gets SIGTERM, then SIGKILL (a JAX process stuck in a collective ignores SIGTERM).
Standard library only: no TensorFlow in the launcher.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from losscheck.core.errors import LosscheckError

#: seconds between two looks at the workers
POLL_S = 0.1
#: seconds a worker has to end after SIGTERM before SIGKILL
TERM_GRACE_S = 3.0
#: the environment variable a worker writes its stage to (probes.multiprocess.STATUS_ENV)
STATUS_ENV = "LOSSCHECK_WORKER_STATUS"


class WorkerFailure(LosscheckError):
    """A worker of a --local run died, failed, hung or did not start (exit 2, naming it)."""


@dataclass
class _Worker:
    index: int
    proc: subprocess.Popen
    status: Path
    stderr: Path | None
    started: float
    code: int | None = None

    def stage(self) -> str:
        lines = _lines(self.status)
        return lines[-1] if lines else "starting"

    def joined(self) -> bool:
        return "joined" in _lines(self.status)

    def last_error(self) -> str:
        lines = _lines(self.stderr) if self.stderr is not None else []
        errors = [ln for ln in lines if ln.startswith("losscheck:")]
        return (errors or [""])[-1][:300]

    def describe(self) -> str:
        return f"worker {self.index} (pid {self.proc.pid})"


def _lines(path: Path) -> list[str]:
    try:
        return [ln.strip() for ln in path.read_text(encoding="utf-8", errors="replace").splitlines() if ln.strip()]
    except OSError:
        return []


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now (the coordinator binds it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _exit_text(code: int) -> str:
    if code < 0:
        try:
            return f"was killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"was killed by signal {-code}"
    return f"exited with code {code}"


def end_all(workers: Sequence[_Worker]) -> None:
    """SIGTERM to every worker's process group still running, then SIGKILL after TERM_GRACE_S; reaped."""
    alive = [w for w in workers if w.proc.poll() is None]
    for w in alive:
        _signal_group(w.proc, signal.SIGTERM)
    deadline = time.monotonic() + TERM_GRACE_S
    while any(w.proc.poll() is None for w in alive) and time.monotonic() < deadline:
        time.sleep(POLL_S)
    for w in workers:  # the group too: a worker's own children outlive it otherwise
        _signal_group(w.proc, signal.SIGKILL)
    for w in workers:
        try:
            w.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass


def _signal_group(proc: subprocess.Popen, sig: int) -> None:
    try:
        os.killpg(proc.pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def run_local(args_for: Callable[[int, str], list[str]], count: int, timeout: float,
              env: dict[str, str]) -> tuple[int, str]:
    """Run `count` workers (`args_for(process_id, coordinator)`: the arguments after `python -m losscheck`)
    to the end: (their common exit code, process 0's standard output). Raises WorkerFailure naming the
    worker when one fails; no worker is left running in any case (KeyboardInterrupt included)."""
    coordinator = f"127.0.0.1:{free_port()}"
    with tempfile.TemporaryDirectory(prefix="losscheck-workers-") as tmp:
        folder = Path(tmp)
        out0 = folder / "stdout-0"
        workers: list[_Worker] = []
        try:
            with open(out0, "wb") as stdout0:
                for i in range(count):
                    workers.append(_start(i, args_for(i, coordinator), env, folder, stdout0))
                code = _supervise(workers, timeout)
            return code, out0.read_text(encoding="utf-8", errors="replace")
        finally:
            end_all(workers)


def _start(i: int, args: list[str], env: dict[str, str], folder: Path, stdout0) -> _Worker:
    status = folder / f"status-{i}"
    status.touch()
    err = None if i == 0 else folder / f"stderr-{i}"
    worker_env = {**env, STATUS_ENV: str(status)}
    try:
        with open(os.devnull, "wb") as devnull, (open(err, "wb") if err is not None else open(os.devnull, "wb")) as e:
            proc = subprocess.Popen([sys.executable, "-m", "losscheck", *args], env=worker_env,
                                    stdin=subprocess.DEVNULL, stdout=stdout0 if i == 0 else devnull,
                                    stderr=None if i == 0 else e, start_new_session=True)
    except OSError as exc:
        raise WorkerFailure(f"--local: worker {i} could not be started ({exc})") from exc
    return _Worker(i, proc, status, err, time.monotonic())


def _supervise(workers: list[_Worker], timeout: float) -> int:
    """Wait for every worker; the exit code they all share. Raises WorkerFailure."""
    first_done: float | None = None
    while True:
        now = time.monotonic()
        ended = [w for w in workers if w.code is None and w.proc.poll() is not None]
        for w in ended:
            w.code = w.proc.returncode
            first_done = first_done if first_done is not None else now
        failed = sorted((w for w in ended if w.code not in (0, 1)), key=lambda w: (w.code or 0) >= 0)
        if failed:  # one killed by a signal first: the others' errors follow from it
            _failed(workers, failed[0])
        running = [w for w in workers if w.code is None]
        if not running:
            break
        late = [w for w in running if not w.joined() and now - w.started > timeout]
        if late:
            raise WorkerFailure(f"--local: {late[0].describe()} did not join the coordinator within {timeout:g} s "
                                f"(--worker-timeout); every worker was stopped")
        if first_done is not None and now - first_done > timeout:
            done = next(w for w in workers if w.code is not None)
            hung = running[0]
            raise WorkerFailure(f"--local: {hung.describe()} was still running {timeout:g} s after worker "
                                f"{done.index} finished (--worker-timeout; its last stage: {hung.stage()}): it waits "
                                "for the others; every worker was stopped")
        time.sleep(POLL_S)
    codes = {w.index: w.code for w in workers}
    if len(set(codes.values())) > 1:
        listed = ", ".join(f"worker {i}: {c}" for i, c in codes.items())
        raise WorkerFailure(f"--local: the workers exited with different codes ({listed})")
    return int(workers[0].code or 0)


def _failed(workers: list[_Worker], w: _Worker) -> None:
    """A worker exited with an error or a signal: the run ends; its error line is named (process 0's
    is on standard error already)."""
    if w.code == 2 and w.index == 0:
        raise WorkerFailure(f"--local: {w.describe()} {_exit_text(2)} (its error is above); every worker was stopped")
    why = w.last_error()
    detail = f": {why}" if why else ""
    raise WorkerFailure(f"--local: {w.describe()} {_exit_text(w.code or 0)} (last stage: {w.stage()}){detail}; "
                        "every worker was stopped")
