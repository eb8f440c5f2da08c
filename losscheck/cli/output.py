"""The command line's output: terminal width and colour, --format/--output, progress on stderr."""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
from pathlib import Path
from typing import Any

import click

from losscheck.core.errors import UsageError
from losscheck.core.text_safety import for_terminal
from losscheck.report.formats import FORMATS, format_for_suffix, render


def _stdout_tty() -> bool:
    return sys.stdout.isatty()


def _stderr_tty() -> bool:
    return sys.stderr.isatty()


def _no_color(kw: dict[str, Any]) -> bool:
    return bool(kw.get("no_color")) or bool(os.environ.get("NO_COLOR"))


def _color(kw: dict[str, Any]) -> bool:
    """ANSI colour on stdout: only to a terminal, never with --no-color or NO_COLOR."""
    return not _no_color(kw) and _stdout_tty()


def _width() -> int:
    """Render width: COLUMNS when set, the terminal's when stdout is one, else a fixed 100 (files, pipes)."""
    columns = os.environ.get("COLUMNS", "")
    if columns.isdigit():
        return max(40, min(int(columns), 200))
    if _stdout_tty():
        return max(40, min(shutil.get_terminal_size((100, 24)).columns, 140))
    return 100


def _format_given() -> bool:
    ctx = click.get_current_context(silent=True)
    if ctx is None:
        return False
    return ctx.get_parameter_source("fmt") not in (click.core.ParameterSource.DEFAULT, None)


def _output_format(path: Path, fmt: str, fmt_given: bool) -> str:
    """An --output file's format: the table's for a log format (which goes to stdout); else its
    suffix's, always for the rich exports (.html, .svg) and for the others only when --format was not
    given (an explicit --format wins); `fmt` otherwise."""
    if FORMATS[fmt].log:
        return _output_format(path, "table", False)
    found = format_for_suffix(path.suffix)
    if found is not None and (found.export or not fmt_given):
        return found.name
    return fmt


def _check_outputs(kw: dict[str, Any], inputs: list[tuple[str, Path | None]]) -> None:
    """Before any work: an explicit --format json/markdown must reach some output (an .html/.svg
    output is always the rendered table), and every output must be writable and none an input."""
    outputs: tuple[Path, ...] = kw.get("output") or ()
    given = _format_given()
    formats = [_output_format(p, kw["fmt"], given) for p in outputs]
    reached = {*formats, *("table" for f in formats if FORMATS[f].export)}  # an export is the rendered table
    if outputs and given and not FORMATS[kw["fmt"]].log and kw["fmt"] not in reached:
        raise UsageError(f"--output {outputs[0]} writes the rendered table, not --format {kw['fmt']}; "
                         f"add another --output (e.g. report{FORMATS[kw['fmt']].suffixes[0]}) "
                         "for that format, or drop --format")
    from losscheck.outputs import check_destinations

    check_destinations(outputs, [(what, p) for what, p in inputs if p is not None])


def _render(report, fmt: str, width: int, color: bool) -> str:
    return render(report, fmt, width=width, color=color)


def _emit(report, kw: dict[str, Any]) -> None:
    """Write the report to stdout, or to each --output (format by suffix, see _output_format); with
    files, one line on stderr says where it went and the verdict, so a CI log shows why a job failed.
    A log format (github) goes to stdout in any case, after the files are written."""
    outputs: tuple[Path, ...] = kw.get("output") or ()
    report.trace = bool(kw.get("trace"))
    if outputs:
        from losscheck.outputs import write_all

        texts = {}
        for path in outputs:  # render every file first: a failure then writes none
            fmt = _output_format(path, kw["fmt"], _format_given())
            texts[path] = _render(report, fmt, 100, not _no_color(kw) and FORMATS[fmt].export)
        write_all(texts)
    if not outputs or FORMATS[kw["fmt"]].log:
        click.echo(_render(report, kw["fmt"], _width(), _color(kw)), nl=False, color=True)  # ANSI is ours to decide
    if outputs:
        from losscheck.report.text import verdict

        click.echo(f"losscheck: wrote {', '.join(map(str, outputs))}: {verdict(report)}", err=True)


class StderrProgress:
    """The `progress` callback the core receives, shown on stderr with rich when it is a terminal.

    `progress("msg")` starts a stage (the previous one is marked done, with its time);
    `progress("msg", total=N)` starts one with a bar of N steps, and `progress.advance(k)` moves it.
    The core may call only `progress("msg")`; SilentProgress (stderr not a terminal) takes the same
    calls, so the core never needs to check which one it has."""

    def __init__(self, console) -> None:
        from rich.progress import (
            BarColumn,
            Progress,
            SpinnerColumn,
            TaskProgressColumn,
            TextColumn,
            TimeElapsedColumn,
        )

        self._progress = Progress(SpinnerColumn(finished_text="✓"), TextColumn("{task.description}"),
                                  BarColumn(bar_width=24), TaskProgressColumn(), TimeElapsedColumn(),
                                  console=console, transient=False, redirect_stdout=False, redirect_stderr=True)
        self._task: Any = None  # rich TaskID of the current stage
        self._started = False

    def __call__(self, msg: str, total: int | None = None) -> None:
        if not self._started:
            self._progress.start()
            self._started = True
        self._finish_current()
        from rich.markup import escape

        self._task = self._progress.add_task(escape(for_terminal(msg)), total=total)  # paths: no markup, no ESC

    def advance(self, steps: float = 1) -> None:
        if self._task is not None:
            self._progress.advance(self._task, steps)

    def _finish_current(self) -> None:
        if self._task is not None:
            task = next(t for t in self._progress.tasks if t.id == self._task)
            if task.total is None:
                self._progress.update(self._task, total=1, completed=1)
            else:
                self._progress.update(self._task, completed=task.total)
            self._progress.stop_task(self._task)

    def close(self) -> None:
        if self._started:
            self._finish_current()
            self._progress.stop()
            self._started = False


class SilentProgress:
    """Progress when stderr is not a terminal: the same protocol, nothing shown."""

    def __call__(self, msg: str, total: int | None = None) -> None:
        pass

    def advance(self, steps: float = 1) -> None:
        pass


@contextlib.contextmanager
def _progress(kw: dict[str, Any]):
    """Rich progress on stderr when stderr is a terminal; silent otherwise (CI logs, pipes, tests)."""
    if not _stderr_tty():
        yield SilentProgress()
        return
    from rich.console import Console

    shown = StderrProgress(Console(stderr=True, force_terminal=True, no_color=_no_color(kw), highlight=False))
    try:
        yield shown
    finally:
        shown.close()


