"""The command line of `--distribute multi-process`: its options, this process's place in the run
(ProcessSpec), and `--local N`, which starts and supervises N workers (commands/launch.py) instead of
measuring here."""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Callable, Iterator
from typing import Any

import click

from losscheck.core.errors import UsageError
from losscheck.core.shards import ProcessSpec

#: the variables keras.distribution.initialize reads when its arguments are not given
ENV_ADDRESSES, ENV_COUNT, ENV_ID = ("KERAS_DISTRIBUTION_JOB_ADDRESSES", "KERAS_DISTRIBUTION_NUM_PROCESSES",
                                    "KERAS_DISTRIBUTION_PROCESS_ID")
#: this process's options that the workers of --local do not get (the launcher's own)
_LAUNCHER_ONLY = ("local", "worker_timeout", "coordinator", "num_processes", "process_id")


def multiprocess_options(f: Callable) -> Callable:
    """compare only: where this process is in a multi-process run, or --local."""
    options = [
        click.option("--local", "local", type=click.IntRange(min=1, max=64), metavar="N",
                     help="With --distribute multi-process: start N processes on 127.0.0.1 (JAX backend) and "
                          "supervise them; process 0 writes the report."),
        click.option("--coordinator", metavar="HOST:PORT",
                     help="With --distribute multi-process: process 0's address (default: "
                          f"{ENV_ADDRESSES}'s first address)."),
        click.option("--num-processes", "num_processes", type=click.IntRange(min=1), metavar="N",
                     help=f"With --distribute multi-process: how many processes take part (default: {ENV_COUNT})."),
        click.option("--process-id", "process_id", type=click.IntRange(min=0), metavar="I",
                     help=f"With --distribute multi-process: this process's id, 0 to N-1 (default: {ENV_ID})."),
        click.option("--worker-timeout", "worker_timeout", type=click.FloatRange(min=1), default=120.0,
                     show_default=True, metavar="S",
                     help="With --local: stop every worker and exit 2 when one dies, does not join within S "
                          "seconds, or is still running S seconds after another finished."),
    ]
    for option in reversed(options):
        f = option(f)
    return f


def process_spec(kw: dict[str, Any]) -> ProcessSpec | None:
    """This process's place in a multi-process run (the options, else Keras's environment variables);
    None when not multi-process. Usage errors for options given without --distribute multi-process."""
    given = [f"--{k.replace('_', '-')}" for k in _LAUNCHER_ONLY if kw.get(k) is not None and k != "worker_timeout"]
    if kw.get("distribute") != "multi-process":
        if given:
            raise UsageError(f"{given[0]} needs --distribute multi-process")
        return None
    if kw.get("local") is not None:
        if any(kw.get(k) is not None for k in ("coordinator", "num_processes", "process_id")):
            raise UsageError("--local N starts every process itself: give it without --coordinator, --num-processes "
                             "and --process-id")
        return None
    coordinator = kw.get("coordinator") or (os.environ.get(ENV_ADDRESSES) or "").split(",")[0] or None
    count = kw.get("num_processes") if kw.get("num_processes") is not None else _env_int(ENV_COUNT)
    me = kw.get("process_id") if kw.get("process_id") is not None else _env_int(ENV_ID)
    if coordinator is None or count is None or me is None:
        raise UsageError("--distribute multi-process needs --local N, or --coordinator HOST:PORT --num-processes N "
                         f"--process-id I on every process (or {ENV_ADDRESSES}, {ENV_COUNT} and {ENV_ID})")
    host, _, port = coordinator.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise UsageError(f"--coordinator {coordinator!r}: expected HOST:PORT (e.g. 10.0.0.1:1234)")
    if me >= count:
        raise UsageError(f"--process-id {me}: expected 0 to {count - 1} for --num-processes {count}")
    return ProcessSpec(coordinator, count, me)


def _env_int(name: str) -> int | None:
    value = os.environ.get(name)
    if value is None:
        return None
    if not value.strip().isdigit():
        raise UsageError(f"{name}={value!r}: expected a whole number")
    return int(value)


def check_backend(kw: dict[str, Any]) -> None:
    """--distribute multi-process runs on JAX: another --backend (or KERAS_BACKEND) is one line."""
    name = kw.get("backend") or (os.environ.get("KERAS_BACKEND") if kw.get("local") is None else None) or "jax"
    if kw.get("distribute") == "multi-process" and name != "jax":
        from importlib.metadata import PackageNotFoundError, version

        from losscheck.core.shards import unsupported_backend

        try:
            keras_version = version("keras")
        except PackageNotFoundError:
            keras_version = "3"
        raise UsageError(unsupported_backend(name, keras_version))


def is_worker_of_many(kw: dict[str, Any]) -> bool:
    """A process of a multi-process run other than process 0: it writes no report."""
    if kw.get("distribute") != "multi-process" or kw.get("local") is not None:
        return False
    me = kw.get("process_id")
    if me is None:
        value = os.environ.get(ENV_ID, "")
        me = int(value) if value.strip().isdigit() else 0
    return int(me) != 0


def worker_args(ctx: click.Context, process_id: int, coordinator: str, count: int) -> list[str]:
    """The command line of worker `process_id`: this command's arguments and options as given, without
    the launcher's own, with the worker's place in the run."""
    args = [str(ctx.command.name)]
    options: list[str] = []
    for param in ctx.command.params:
        name = param.name or ""
        value = ctx.params.get(name)
        if name in _LAUNCHER_ONLY or value is None:
            continue
        if isinstance(param, click.Argument):
            args.append(str(value))
            continue
        if not isinstance(param, click.Option):
            continue
        source = ctx.get_parameter_source(name)
        if source is not None and source.name == "DEFAULT":
            continue
        flag = max(param.opts, key=len)
        if param.is_flag:
            if value:
                options.append(flag)
        elif param.multiple:
            for v in value:
                options += [flag, str(v)]
        else:
            options += [flag, str(value)]
    return args + options + ["--coordinator", coordinator, "--num-processes", str(count),
                             "--process-id", str(process_id)]


def launch(ctx: click.Context, kw: dict[str, Any]) -> tuple[int, str]:
    """--local N: (the workers' exit code, process 0's report text). Raises WorkerFailure / UsageError."""
    from losscheck.commands.launch import run_local

    count = int(kw["local"])
    env = {**os.environ, "KERAS_BACKEND": "jax"}
    for name in (ENV_ADDRESSES, ENV_COUNT, ENV_ID):
        env.pop(name, None)
    return run_local(lambda i, coordinator: worker_args(ctx, i, coordinator, count), count,
                     float(kw["worker_timeout"]), env)


@contextlib.contextmanager
def report_only_stdout(kw: dict[str, Any]) -> Iterator[None]:
    """In a process of a multi-process run: native code writing to file descriptor 1 (Gloo's connection
    messages) goes to standard error, so that standard output carries the report alone."""
    if kw.get("distribute") != "multi-process" or kw.get("local") is not None:
        yield
        return
    try:
        fd = sys.stdout.fileno()
    except (AttributeError, OSError, ValueError):  # not a file (a test runner's buffer): nothing to keep apart
        yield
        return
    sys.stdout.flush()
    saved = os.dup(fd)
    os.dup2(sys.stderr.fileno(), fd)
    previous = sys.stdout
    sys.stdout = open(saved, "w", encoding=previous.encoding or "utf-8", closefd=False)  # noqa: SIM115
    try:
        yield
    finally:
        sys.stdout.flush()
        sys.stdout = previous
        os.dup2(saved, fd)
        os.close(saved)
