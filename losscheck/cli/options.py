"""The command line's options and click classes: shared option groups, one-line usage errors."""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from losscheck.core.gate import FAIL_ON
from losscheck.report.formats import OPTION_FORMATS

EXIT_OK, EXIT_ERROR = 0, 2
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
        click.option("--fit-epochs", "fit_epochs", type=click.IntRange(min=1, max=10_000), default=1,
                     show_default=True,
                     help="Run the fit probe for up to N epochs, ending with the epoch of the first non-finite step, "
                          "which is then located (training_nonfinite); fit_epoch stays the first epoch's figure."),
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
                          "folder; finds the epoch the model's weights are from and explains its logged loss "
                          "(fit_logged)."),
        click.option("--epoch", "epoch", type=click.IntRange(1), metavar="K",
                     help="With --history: the epoch (from 1) the model's weights are from (default: the one whose "
                          "val_loss evaluate_val reproduces, else the last)."),
        click.option("--parity", "parity", metavar="LIST",
                     help="Re-measure evaluate under other execution settings, comma-separated: backends (every "
                          "other installed Keras backend, in a subprocess), jit (jit_compile on and off), "
                          "float32 (a float32 copy of a mixed-precision model); differences become findings."),
        click.option("--distribute", type=click.Choice(["mirrored", "multi-process"]),
                     help="mirrored: load the model under tf.distribute.MirroredStrategy over the visible devices "
                          "(every GPU, else every logical CPU; on JAX, Keras's DataParallel over every JAX device): "
                          "fit_epoch and evaluate_distributed are Keras's distributed figures; a fit that differs "
                          "from one device is distribution-scaling. multi-process: Keras's own evaluate and fit "
                          "over several processes (JAX; --local N, or --coordinator/--num-processes/--process-id "
                          "on each host): evaluate_multiprocess, fit_epoch_multiprocess beside one process's."),
        click.option("--trace", "trace", is_flag=True,
                     help="Show the reduction trace in the table and markdown even when no finding refers to it "
                          "(the JSON report always holds it)."),
        click.option("--plot", "plot", type=click.Path(dir_okay=False, path_type=Path), metavar="FILE",
                     help="Draw the logged curves, the re-measured figures and the decomposition to FILE "
                          "(.png or .svg; needs the losscheck[plot] extra)."),
    ]
    for option in reversed(options):
        f = option(f)
    return f


PARSE_OPTION = click.option(
    "--parse", metavar="FILE.py:FUNC",
    help="DATA is a folder of TFRecord files: FUNC maps one serialized example to (x, y) or (x, y, sample_weight); "
         "batched by --batch-size, in file order.")


