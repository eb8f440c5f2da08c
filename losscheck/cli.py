"""Command line: parse options -> Config -> run -> render -> write. The only module that prints or
exits. TensorFlow is imported only inside commands, so --help and --version stay instant."""

from __future__ import annotations

import contextlib
import functools
import math
import os
import shutil
import sys
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from losscheck import __version__, interrupts, preflight, usercode
from losscheck.core.config import Config
from losscheck.core.errors import LosscheckError, UsageError
from losscheck.core.gate import FAIL_ON, Gate, codes
from losscheck.core.text_safety import for_terminal
from losscheck.report.formats import FORMATS, OPTION_FORMATS, format_for_suffix, render

EXIT_OK, EXIT_ERROR = 0, 2
EXIT_TERMINATED = 128 + 15  # SIGTERM, as a shell reports a process it ended
MAX_SEED = 2**32 - 1  # numpy / TensorFlow seeds are 32-bit
MAX_BATCH_SIZE = 2**31 - 1  # TensorFlow's int32 batch dimension


class FiniteFloat(click.FloatRange):
    """A FloatRange that also refuses nan and inf."""

    name = "finite float"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        out = super().convert(value, param, ctx)
        if not math.isfinite(out):
            self.fail(f"{value!r} is not a finite number.", param, ctx)
        return out


class OneLineUsageError(click.ClickException):
    """A click usage error shown as losscheck's one line (not click's Usage/Try/Error block)."""

    exit_code = EXIT_ERROR

    def show(self, file: Any = None) -> None:
        click.echo(f"losscheck: error: {self.message}", err=True)


def _one_line(exc: click.ClickException) -> OneLineUsageError:
    text = " ".join(exc.format_message().split()).rstrip(".")
    ctx = getattr(exc, "ctx", None)
    if ctx is not None and isinstance(exc, click.UsageError):
        if ctx.parent is not None:
            command = f"losscheck {ctx.command.name}"
        else:  # the group, or an entry point of its own (losscheck-inspect)
            command = "losscheck" if isinstance(ctx.command, click.Group) else str(ctx.command.name)
        text += f"{' -' if text.endswith('?') else ';'} see '{command} --help'"
    return OneLineUsageError(text)


#: click's "no arguments: show the help" signal, which stays click's (the help is the answer)
_KEEP = (OneLineUsageError,) + tuple(
    cls for cls in (getattr(click.exceptions, "NoArgsIsHelpError", None),) if cls is not None)


class OneLineCommand(click.Command):
    """Parsing errors of the command (of a group: and of its commands) become one line, exit 2."""

    def make_context(self, *args: Any, **kwargs: Any) -> click.Context:
        try:
            return super().make_context(*args, **kwargs)
        except _KEEP:
            raise
        except click.ClickException as exc:
            raise _one_line(exc) from exc

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except _KEEP:
            raise
        except click.ClickException as exc:
            raise _one_line(exc) from exc


class OneLineGroup(OneLineCommand, click.Group):
    """The `losscheck` group."""


def common_options(f: Callable) -> Callable:
    """Options shared by every command that loads a model."""
    options = [
        click.option("--batch-size", type=click.IntRange(min=1, max=MAX_BATCH_SIZE), default=32, show_default=True,
                     help="Batch size of every probe."),
        click.option("--custom-objects", type=click.Path(dir_okay=False, path_type=Path),
                     help="Python file whose public functions/classes (or `custom_objects` dict) are needed to load."),
        click.option("--loss", "loss", metavar="SPEC",
                     help="Loss to use when the file has none, or to override it: a Keras loss name or FILE.py:NAME."),
        click.option("--unsafe", is_flag=True,
                     help="Turn off Keras's safe mode as a whole (only for files you trust): Lambda layers' Python "
                          "bytecode is deserialized and run, and whatever else safe mode blocks is allowed (e.g. a "
                          "StringLookup vocabulary file named in the model's config is read, a TFSMLayer loads a "
                          "SavedModel from disk)."),
        click.option("--seed", type=click.IntRange(min=0, max=MAX_SEED), default=0, show_default=True,
                     help="Seed for every random effect."),
        click.option("--rtol", type=FiniteFloat(min=0), default=1e-4, show_default=True,
                     help="Relative tolerance under which two figures count as equal."),
        click.option("--fail-on", type=click.Choice(list(FAIL_ON)), default="error",
                     show_default=True, help="Lowest severity that makes the exit code 1."),
        click.option("--format", "fmt", type=click.Choice(list(OPTION_FORMATS)), default="table",
                     show_default=True, help="Report format on stdout; github: GitHub Actions annotations (always "
                                             "on stdout, with --output files in the format of their suffix)."),
        click.option("--output", type=click.Path(dir_okay=False, path_type=Path), multiple=True, metavar="PATH",
                     help="Write the report to this file instead of stdout; .html/.svg: the rendered table "
                          "(rich export); .json/.md: that format unless --format is given. May be repeated "
                          "(e.g. --output report.html --output summary.md)."),
        click.option("--select", help="Comma-separated finding codes to keep."),
        click.option("--ignore", help="Comma-separated finding codes to drop."),
        click.option("--no-color", is_flag=True, help="No colour (also when NO_COLOR is set)."),
        click.option("--backend", metavar="NAME",
                     help="Keras backend to run on: tensorflow, jax or torch (sets KERAS_BACKEND before Keras is "
                          "imported; jax/torch need the losscheck[jax] / losscheck[torch] extra)."),
        click.option("--debug", is_flag=True, help="Show tracebacks."),
    ]
    for option in reversed(options):
        f = option(f)
    return f


def fit_options(f: Callable) -> Callable:
    options = [
        click.option("--class-weight", "class_weight", metavar="JSON_OR_FILE",
                     help="The class_weight passed to fit, e.g. '{\"0\": 1, \"1\": 9}'; only the fit probe uses it."),
        click.option("--max-gap", type=FiniteFloat(min=0),
                     help="Also exit 1 when evaluate and fit_epoch (or train_mode) differ by more than X relative."),
        click.option("--probe-samples", type=click.IntRange(min=1),
                     help="Run the training-mode ablation passes on the first N samples only."),
    ]
    for option in reversed(options):
        f = option(f)
    return f


def validation_options(f: Callable) -> Callable:
    """compare only: validation data, the user's logged history, and the plot."""
    options = [
        click.option("--val", "val", type=click.Path(path_type=Path), metavar="VAL",
                     help="Validation data file (same keys as DATA): adds evaluate_val and fit_val and splits "
                          "fit_epoch - evaluate_val into its causes."),
        click.option("--validation-split", "validation_split",
                     type=click.FloatRange(0, 1, min_open=True, max_open=True),
                     metavar="F", help="Use the last fraction F of DATA as validation data, exactly as "
                                       "fit(validation_split=F) cuts it (before shuffling)."),
        click.option("--history", "history", type=click.Path(path_type=Path), metavar="FILE",
                     help="The run's logged losses: History.history JSON, CSVLogger CSV or TensorBoard log "
                          "folder; finds the epoch the model's weights are from."),
        click.option("--parity", "parity", metavar="LIST",
                     help="Re-measure evaluate under other execution settings, comma-separated: backends (every "
                          "other installed Keras backend, in a subprocess), jit (jit_compile on and off), "
                          "float32 (a float32 copy of a mixed-precision model); differences become findings."),
        click.option("--distribute", type=click.Choice(["mirrored"]),
                     help="Load the model under tf.distribute.MirroredStrategy over the visible devices (every GPU, "
                          "else every logical CPU; on JAX, Keras's DataParallel over every JAX device): fit_epoch "
                          "and evaluate_distributed are Keras's distributed figures; a fit that differs from one "
                          "device is distribution-scaling."),
        click.option("--plot", "plot", type=click.Path(dir_okay=False, path_type=Path), metavar="FILE",
                     help="Draw the logged curves, the re-measured figures and the decomposition to FILE "
                          "(.png or .svg; needs the losscheck[plot] extra)."),
    ]
    for option in reversed(options):
        f = option(f)
    return f


def _check_plot(path: Path | None) -> None:
    """Before any work: --plot needs a .png/.svg name, an existing folder and matplotlib."""
    if path is None:
        return
    if path.suffix.lower() not in (".png", ".svg"):
        raise UsageError(f"--plot {path}: the file name must end in .png or .svg")
    if not path.parent.is_dir():
        raise UsageError(f"--plot {path}: the folder {path.parent} does not exist; create it or choose another file")
    from losscheck.plot import require_matplotlib

    require_matplotlib()


def _config(model: Path, data: Path | None, kw: dict[str, Any]) -> Config:
    """Check everything that needs no TensorFlow (it takes seconds to import), then build the Config."""
    preflight.check_backend(kw.get("backend"))
    preflight.check_model(model)
    data_input = preflight.check_data(data, kw.get("parse")) if data is not None else None
    if kw["custom_objects"] is not None:
        preflight.check_python_file(kw["custom_objects"], "--custom-objects")
    preflight.check_loss(kw["loss"], kw["custom_objects"])
    class_weight = preflight.parse_class_weight(kw.get("class_weight"))
    inputs = [("the model", model), ("the data file", data_input),
              ("the --parse file", preflight.loss_file(kw.get("parse"))),
              ("the --custom-objects file", kw["custom_objects"]),
              ("the --loss file", preflight.loss_file(kw["loss"])),
              ("the --class-weight file", preflight.class_weight_file(kw.get("class_weight"))),
              ("the --val file", kw.get("val")), ("the --history file", kw.get("history"))]
    _check_outputs(kw, inputs)
    if kw.get("plot") is not None:  # the plot is written too: never over an input or a report
        from losscheck.outputs import check_destinations

        check_destinations([kw["plot"]], [(w, p) for w, p in inputs if p is not None]
                           + [("an --output file", o) for o in kw.get("output") or ()], option="--plot")
    return Config(
        model_path=model, data_path=data, batch_size=kw["batch_size"], custom_objects=kw["custom_objects"],
        loss=kw["loss"], class_weight=class_weight, unsafe=kw["unsafe"], seed=kw["seed"],
        rtol=kw["rtol"], probe_samples=kw.get("probe_samples"),
        progress=_stderr_tty(), inputs=_pipeline_inputs(data, kw.get("parse"), kw["batch_size"]),
        val_path=kw.get("val"), validation_split=kw.get("validation_split"), history_path=kw.get("history"),
        parity=preflight.parse_parity(kw.get("parity")), distribute=kw.get("distribute"),
    )


def _with_nonfinite_figure(report):
    """`report`, or a copy with the non-finite rule's finding for a NaN/Inf figure when no finding names
    one: whatever a command returned, a NaN figure never exits 0."""
    import dataclasses

    from losscheck.measurements import Measurements, frozen_mapping
    from losscheck.rules.lossfn import non_finite

    if any(f.code == "non-finite" for f in report.findings):
        return report
    figures = {name: fig.value for name, fig in report.figures.items() if isinstance(fig.value, float)}
    extra = non_finite(Measurements(report.command, figures=frozen_mapping(figures)))
    return dataclasses.replace(report, findings=[*report.findings, *extra]) if extra else report


def _pipeline_inputs(data: Path | None, parse: str | None, batch_size: int) -> Any:
    """DATA as FILE.py:FUNC (the function returns arrays, a dict of arrays, a tf.data.Dataset, a PyDataset
    or a Python generator), or a folder of TFRecord files with --parse FILE.py:FUNC: the API's inputs with a data
    function called at load time. None for a data file."""
    from losscheck.loading.sources import function_data, is_function_spec, tfrecord_data

    if data is None:
        return None
    if parse is not None:
        if not is_function_spec(parse):
            raise UsageError(f"--parse {parse!r}: expected FILE.py:FUNCTION (a function mapping one serialized "
                             "example to (x, y) or (x, y, sample_weight))")
        factory = functools.partial(tfrecord_data, data, parse, batch_size)
    elif is_function_spec(str(data)):
        factory = functools.partial(function_data, str(data))
    else:
        return None
    from losscheck.api import _Inputs

    return _Inputs(None, factory, None, None, None, {}, True)


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


def _gate(kw: dict[str, Any]) -> Gate:
    """The exit-code policy, the CLI's alone: --fail-on, --select, --ignore and --max-gap."""
    return Gate(fail_on=kw["fail_on"], select=codes(kw.get("select"), "--select"),
                ignore=codes(kw.get("ignore"), "--ignore"), max_gap=kw.get("max_gap"))


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


def run_guarded(command: Callable, args: tuple, kw: dict[str, Any]) -> int:
    """Run a command body and emit its report; the exit code: 2 with one line on bad input or internal
    error (traceback with --debug), 143 after SIGTERM."""
    usercode.reset()
    try:
        with interrupts.handled(), usercode.no_hard_exit():
            gate = _gate(kw)  # usage errors before loading anything
            with _progress(kw) as progress:
                report = command(*args, progress=progress, **kw)
            report = gate.apply(_with_nonfinite_figure(report))
            _emit(report, kw)
            return report.exit_code(gate)
    except LosscheckError as exc:
        if kw.get("debug"):
            traceback.print_exc()
        click.echo(f"losscheck: error: {for_terminal(exc.message)}", err=True)  # may quote file contents
        return EXIT_ERROR
    except KeyboardInterrupt:
        if interrupts.received() == interrupts.signal.SIGTERM:
            click.echo("losscheck: terminated (SIGTERM); no report was written", err=True)
            return EXIT_TERMINATED
        click.echo("losscheck: interrupted; no report was written", err=True)
        return EXIT_ERROR
    except (SystemExit, usercode.UserCodeExit) as exc:  # nothing in a run exits but the user's code
        if kw.get("debug"):
            traceback.print_exc()
        click.echo(f"losscheck: error: {for_terminal(usercode.exited(exc).message)}", err=True)
        return EXIT_ERROR
    except Exception as exc:  # noqa: BLE001 - the user's code failed, or an internal error: exit 2 with one line
        if kw.get("debug"):
            traceback.print_exc()
        theirs = usercode.explain(exc)
        if theirs is not None:
            click.echo(f"losscheck: error: {for_terminal(theirs.message)}", err=True)  # quotes their message
            return EXIT_ERROR
        first = for_terminal((str(exc).strip().splitlines() or [""])[0][:300])
        click.echo(f"losscheck: internal error: {type(exc).__name__}: {first} (rerun with --debug for the "
                   "traceback and please report it)", err=True)
        return EXIT_ERROR


def guarded(command: Callable) -> Callable:
    """A click command body run by run_guarded, exiting with its code."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kw: Any) -> None:
        sys.exit(run_guarded(command, args, kw))

    return wrapper


@click.group(cls=OneLineGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="losscheck")
def main() -> None:
    """Explain why the loss Keras reports in fit, in evaluate and in your own numpy code disagree.

    Exit codes: 0 no finding at or above --fail-on; 1 findings; 2 bad input or error.
    """


PARSE_OPTION = click.option(
    "--parse", metavar="FILE.py:FUNC",
    help="DATA is a folder of TFRecord files: FUNC maps one serialized example to (x, y) or (x, y, sample_weight); "
         "batched by --batch-size, in file order.")


@main.command(short_help="Every loss figure (fit, training mode, evaluate, numpy) side by side, each gap explained.")
@click.argument("model", type=click.Path(path_type=Path))
@click.argument("data", type=click.Path(path_type=Path))
@common_options
@fit_options
@validation_options
@PARSE_OPTION
@guarded
def compare(model: Path, data: Path, progress: Callable[[str], None], **kw: Any):
    """Every loss figure (fit, training mode, evaluate, numpy) side by side, each gap explained."""
    preflight.check_validation(kw.get("val"), kw.get("validation_split"))
    _check_plot(kw.get("plot"))
    cfg = _config(model, data, kw)
    from losscheck.commands.compare import run_compare

    report = run_compare(cfg, progress)
    if kw.get("plot") is not None:
        from losscheck.plot import write_plot

        write_plot(report, kw["plot"])
    return report


@main.command(short_help="Where the loss comes from: per class, output or sample, adding back up to evaluate.")
@click.argument("model", type=click.Path(path_type=Path))
@click.argument("data", type=click.Path(path_type=Path))
@click.option("--per-class", is_flag=True, help="Loss per class (channel or true class).")
@click.option("--per-output", is_flag=True, help="Loss per output, weights and penalties.")
@click.option("--per-sample", is_flag=True, help="The worst samples and the distribution.")
@click.option("--top", type=click.IntRange(min=1), default=10, show_default=True, help="Rows for --per-sample.")
@common_options
@PARSE_OPTION
@guarded
def breakdown(model: Path, data: Path, per_class: bool, per_output: bool, per_sample: bool, top: int,
              progress: Callable[[str], None], **kw: Any):
    """Where the loss comes from: per class, per output or per sample, adding back up to evaluate."""
    modes = [name for name, on in (("per_class", per_class), ("per_output", per_output),
                                   ("per_sample", per_sample)) if on]
    if not modes:
        raise UsageError("breakdown needs one of --per-class, --per-output or --per-sample")
    if len(modes) > 1:
        given = " and ".join("--" + m.replace("_", "-") for m in modes)
        raise UsageError(f"breakdown takes one mode at a time, not {given}; run it once per mode")
    mode = modes[0]
    cfg = _config(model, data, kw)
    from losscheck.commands.breakdown import run_breakdown

    return run_breakdown(cfg, mode, top, progress)


@main.command(short_help="Loss configuration, layers that act differently in training, regularizers; no data needed.")
@click.argument("model", type=click.Path(path_type=Path))
@common_options
@guarded
def inspect(model: Path, progress: Callable[[str], None], **kw: Any):
    """Loss configuration, training-dependent layers, regularizers, saved-by version: no data needed."""
    return _inspect(model, progress, **kw)


def _inspect(model: Path, progress: Callable[[str], None], **kw: Any):
    cfg = _config(model, None, kw)
    from losscheck.commands.inspect import run_inspect

    return run_inspect(cfg, progress)


@click.command("losscheck-inspect", cls=OneLineCommand,
               context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="losscheck")
@click.argument("models", nargs=-1, required=True, type=click.Path(path_type=Path), metavar="MODEL...")
@common_options
def inspect_each(models: tuple[Path, ...], **kw: Any) -> None:
    """`losscheck inspect` on each MODEL in turn (the pre-commit hook's entry): the reports one after
    another on stdout; the exit code is the worst one (2 before 1 before 0)."""
    if len(models) > 1 and kw.get("output"):
        raise click.UsageError("--output takes one report: give one MODEL, or no --output")
    if len(models) > 1 and kw["fmt"] == "json":
        raise click.UsageError("--format json writes one report: give one MODEL")
    worst = EXIT_OK
    for model in models:
        code = run_guarded(_inspect, (model,), kw)
        if interrupts.received() is not None:  # Ctrl-C or SIGTERM: the remaining models are not inspected
            sys.exit(code)
        worst = max(worst, code)
    sys.exit(worst)


if __name__ == "__main__":  # pragma: no cover
    main()
