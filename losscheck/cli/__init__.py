"""Command line: parse options -> Config -> run -> render -> write. The only package that prints or
exits (options.py: the options; output.py: rendering, --output, progress). TensorFlow is imported
only inside commands, so --help and --version stay instant."""

from __future__ import annotations

import functools
import sys
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from losscheck import __version__, interrupts, preflight, usercode
from losscheck.cli import output
from losscheck.cli.launch import check_backend as check_multiprocess_backend
from losscheck.cli.launch import is_worker_of_many, multiprocess_options, process_spec, report_only_stdout
from losscheck.cli.options import (
    EXIT_ERROR,
    EXIT_OK,
    PARSE_OPTION,
    OneLineCommand,
    OneLineGroup,
    common_options,
    fit_options,
    validation_options,
)
from losscheck.cli.output import (
    SilentProgress,
    StderrProgress,
    _check_outputs,
    _emit,
    _output_format,
    _progress,
    _render,
)
from losscheck.core.config import Config
from losscheck.core.errors import LosscheckError, UsageError
from losscheck.core.gate import Gate, codes
from losscheck.core.text_safety import for_terminal

__all__ = ["main", "inspect_each", "StderrProgress", "SilentProgress", "_output_format", "_render"]

EXIT_TERMINATED = 128 + 15  # SIGTERM, as a shell reports a process it ended


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
    check_multiprocess_backend(kw)
    preflight.check_backend(kw.get("backend"))
    processes = process_spec(kw)
    names = preflight.check_model(model)  # its input and output names, when its file tells them
    data_input = preflight.check_data(data, kw.get("parse"), names) if data is not None else None
    if kw.get("val") is not None:
        preflight.check_data(kw["val"], names=names, what="validation data file (--val)")
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
        progress=output._stderr_tty(), inputs=_pipeline_inputs(data, kw.get("parse"), kw["batch_size"]),
        val_path=kw.get("val"), validation_split=kw.get("validation_split"), history_path=kw.get("history"),
        parity=preflight.parse_parity(kw.get("parity")), distribute=kw.get("distribute"),
        fit_epochs=kw.get("fit_epochs") or 1, epoch=kw.get("epoch"), processes=processes,
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


def _gate(kw: dict[str, Any]) -> Gate:
    """The exit-code policy, the CLI's alone: --fail-on, --select, --ignore and --max-gap."""
    return Gate(fail_on=kw["fail_on"], select=codes(kw.get("select"), "--select"),
                ignore=codes(kw.get("ignore"), "--ignore"), max_gap=kw.get("max_gap"))


def run_guarded(command: Callable, args: tuple, kw: dict[str, Any]) -> int:
    """Run a command body and emit its report; the exit code: 2 with one line on bad input or internal
    error (traceback with --debug), 143 after SIGTERM."""
    usercode.reset()
    try:
        with interrupts.handled(), usercode.no_hard_exit(), report_only_stdout(kw):
            gate = _gate(kw)  # usage errors before loading anything
            with _progress(kw) as progress:
                report = command(*args, progress=progress, **kw)
            report = gate.apply(_with_nonfinite_figure(report))
            if not is_worker_of_many(kw):  # in a multi-process run, process 0 writes the report
                _emit(report, kw)
            return report.exit_code(gate)
    except LosscheckError as exc:
        if kw.get("debug"):
            traceback.print_exc()
        click.echo(f"losscheck: error: {for_terminal(exc.message)}", err=True)  # may quote file contents
        return EXIT_ERROR
    except KeyboardInterrupt:
        return _interrupted()
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
        if kw.get("local") is not None and kw.get("distribute") == "multi-process":
            sys.exit(run_launcher(kw))
        sys.exit(run_guarded(command, args, kw))

    return wrapper


def run_launcher(kw: dict[str, Any]) -> int:
    """`--distribute multi-process --local N`: the inputs checked here, then N workers started and
    supervised; process 0's report on stdout, the workers' common exit code (2 naming a failed worker)."""
    from losscheck.cli.launch import launch

    try:
        with interrupts.handled():
            _gate(kw)
            preflight.check_validation(kw.get("val"), kw.get("validation_split"))
            _check_plot(kw.get("plot"))
            cfg = _config(kw["model"], kw["data"], kw)
            if cfg.inputs is not None:
                raise UsageError("--distribute multi-process takes a data file (.npz or .h5), not FILE.py:FUNC or "
                                 "a TFRecord folder")
            code, text = launch(click.get_current_context(), kw)
        click.echo(text, nl=False)
        return code
    except LosscheckError as exc:
        click.echo(f"losscheck: error: {for_terminal(exc.message)}", err=True)
        return EXIT_ERROR
    except KeyboardInterrupt:
        return _interrupted("every worker was stopped, ")


def _interrupted(stopped: str = "") -> int:
    """The line and exit code after Ctrl-C (2) or SIGTERM (143)."""
    if interrupts.received() == interrupts.signal.SIGTERM:
        click.echo(f"losscheck: terminated (SIGTERM); {stopped}no report was written", err=True)
        return EXIT_TERMINATED
    click.echo(f"losscheck: interrupted; {stopped}no report was written", err=True)
    return EXIT_ERROR


@click.group(cls=OneLineGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="losscheck")
def main() -> None:
    """Explain why the loss Keras reports in fit, in evaluate and in your own numpy code disagree.

    Exit codes: 0 no finding at or above --fail-on; 1 findings; 2 bad input or error.
    """


@main.command(short_help="Every loss figure (fit, training mode, evaluate, numpy) side by side, each gap explained.")
@click.argument("model", type=click.Path(path_type=Path))
@click.argument("data", type=click.Path(path_type=Path))
@common_options
@fit_options
@validation_options
@multiprocess_options
@PARSE_OPTION
@guarded
def compare(model: Path, data: Path, progress: Callable[[str], None], **kw: Any):
    """Every loss figure (fit, training mode, evaluate, numpy) side by side, each gap explained."""
    preflight.check_validation(kw.get("val"), kw.get("validation_split"))
    _check_plot(kw.get("plot"))
    cfg = _config(model, data, kw)
    from losscheck.commands.compare import run_compare

    report = run_compare(cfg, progress)
    if kw.get("plot") is not None and not is_worker_of_many(kw):
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
