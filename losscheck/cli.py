"""Command line: parse options -> Config -> run -> render -> write. The only module that prints or
exits. TensorFlow is imported only inside commands, so --help and --version stay instant."""

from __future__ import annotations

import functools
import json
import os
import shutil
import sys
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from losscheck import __version__
from losscheck.config import Config
from losscheck.errors import LosscheckError, UsageError
from losscheck.findings import CODES

EXIT_OK, EXIT_FINDINGS, EXIT_ERROR = 0, 1, 2


def _codes(value: str | None, option: str) -> frozenset[str]:
    if not value:
        return frozenset()
    codes = frozenset(c.strip() for c in value.split(",") if c.strip())
    unknown = sorted(codes - set(CODES))
    if unknown:
        raise UsageError(f"{option}: unknown finding code(s) {', '.join(unknown)}; known: {', '.join(CODES)}")
    return codes


def _class_weight(value: str | None) -> dict[int, float] | None:
    if not value:
        return None
    text = value
    if not value.lstrip().startswith("{") and Path(value).is_file():
        text = Path(value).read_text()
    try:
        raw = json.loads(text)
        if not isinstance(raw, dict) or not raw:
            raise ValueError("not a non-empty JSON object")
        return {int(k): float(v) for k, v in raw.items()}
    except (ValueError, TypeError) as exc:
        raise UsageError(f"--class-weight: {value!r} is not a JSON object of class -> weight ({exc}); "
                         "e.g. '{\"0\": 1, \"1\": 9}' or a file holding it") from exc


def common_options(f: Callable) -> Callable:
    """Options shared by every command that loads a model."""
    options = [
        click.option("--batch-size", type=click.IntRange(min=1), default=32, show_default=True,
                     help="Batch size of every probe."),
        click.option("--custom-objects", type=click.Path(dir_okay=False, path_type=Path),
                     help="Python file whose public functions/classes (or `custom_objects` dict) are needed to load."),
        click.option("--loss", "loss", metavar="SPEC",
                     help="Loss to use when the file has none, or to override it: a Keras loss name or FILE.py:NAME."),
        click.option("--unsafe", is_flag=True, help="Allow deserializing Lambda layers (runs Python bytecode)."),
        click.option("--seed", type=int, default=0, show_default=True, help="Seed for every random effect."),
        click.option("--rtol", type=click.FloatRange(min=0), default=1e-4, show_default=True,
                     help="Relative tolerance under which two figures count as equal."),
        click.option("--fail-on", type=click.Choice(["info", "warning", "error", "never"]), default="error",
                     show_default=True, help="Lowest severity that makes the exit code 1."),
        click.option("--format", "fmt", type=click.Choice(["table", "json", "markdown"]), default="table",
                     show_default=True, help="Report format on stdout."),
        click.option("--output", type=click.Path(dir_okay=False, path_type=Path),
                     help="Write the report to this file instead of stdout (.html/.svg: rendered table)."),
        click.option("--select", help="Comma-separated finding codes to keep."),
        click.option("--ignore", help="Comma-separated finding codes to drop."),
        click.option("--no-color", is_flag=True, help="No colour (also when NO_COLOR is set)."),
        click.option("--debug", is_flag=True, help="Show tracebacks."),
    ]
    for option in reversed(options):
        f = option(f)
    return f


def fit_options(f: Callable) -> Callable:
    options = [
        click.option("--class-weight", "class_weight", metavar="JSON_OR_FILE",
                     help="The class_weight passed to fit, e.g. '{\"0\": 1, \"1\": 9}'; only the fit probe uses it."),
        click.option("--max-gap", type=click.FloatRange(min=0),
                     help="Also exit 1 when evaluate and fit_epoch (or train_mode) differ by more than X relative."),
        click.option("--probe-samples", type=click.IntRange(min=1),
                     help="Run the training-mode ablation passes on the first N samples only."),
    ]
    for option in reversed(options):
        f = option(f)
    return f


def _config(model: Path, data: Path | None, kw: dict[str, Any]) -> Config:
    return Config(
        model_path=model, data_path=data, batch_size=kw["batch_size"], custom_objects=kw["custom_objects"],
        loss=kw["loss"], class_weight=_class_weight(kw.get("class_weight")), unsafe=kw["unsafe"], seed=kw["seed"],
        rtol=kw["rtol"], fail_on=kw["fail_on"], select=_codes(kw["select"], "--select"),
        ignore=_codes(kw["ignore"], "--ignore"), max_gap=kw.get("max_gap"), probe_samples=kw.get("probe_samples"),
        progress=sys.stderr.isatty(),
    )


def _color(kw: dict[str, Any]) -> bool:
    if kw.get("no_color") or os.environ.get("NO_COLOR"):
        return False
    return kw.get("output") is None and sys.stdout.isatty()


def _emit(report, kw: dict[str, Any]) -> None:
    from losscheck.report import render

    output: Path | None = kw.get("output")
    if output is not None and output.suffix.lower() in (".html", ".svg"):
        from losscheck.report.export import export_rich

        text = export_rich(report, output.suffix.lower())
    else:
        width = 100 if output is not None else max(80, min(shutil.get_terminal_size((100, 24)).columns, 140))
        text = render(report, kw["fmt"], width=width, color=_color(kw))
    if output is not None:
        try:
            output.write_text(text, encoding="utf-8")
        except OSError as exc:
            raise UsageError(f"{output}: cannot write the report ({exc.strerror}); choose another --output") from exc
    else:
        click.echo(text, nl=False)


def _progress(enabled: bool) -> Callable[[str], None]:
    if not enabled:
        return lambda _msg: None
    return lambda msg: click.echo(f"losscheck: {msg}…", err=True)


def guarded(command: Callable) -> Callable:
    """Run a command body: exit 2 with one line on bad input or internal error (traceback with --debug)."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kw: Any) -> None:
        try:
            report = command(*args, **kw)
            _emit(report, kw)
            code = report.exit_code()
        except LosscheckError as exc:
            if kw.get("debug"):
                traceback.print_exc()
            click.echo(f"losscheck: error: {exc.message}", err=True)
            code = EXIT_ERROR
        except KeyboardInterrupt:
            click.echo("losscheck: interrupted", err=True)
            code = EXIT_ERROR
        except Exception as exc:  # internal error: still exit 2 with one line
            if kw.get("debug"):
                traceback.print_exc()
            first = (str(exc).strip().splitlines() or [""])[0][:300]
            click.echo(f"losscheck: internal error: {type(exc).__name__}: {first} (rerun with --debug for the "
                       "traceback and please report it)", err=True)
            code = EXIT_ERROR
        sys.exit(code)

    return wrapper


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="losscheck")
def main() -> None:
    """Explain why the loss Keras reports in fit, in evaluate and in your own numpy code disagree.

    Exit codes: 0 no finding at or above --fail-on; 1 findings; 2 bad input or error.
    """


@main.command()
@click.argument("model", type=click.Path(path_type=Path))
@click.argument("data", type=click.Path(path_type=Path))
@common_options
@fit_options
@guarded
def compare(model: Path, data: Path, **kw: Any):
    """Every loss figure (fit, training mode, evaluate, numpy) side by side, each gap explained."""
    from losscheck.compare import run_compare

    cfg = _config(model, data, kw)
    return run_compare(cfg, _progress(cfg.progress))


@main.command()
@click.argument("model", type=click.Path(path_type=Path))
@click.argument("data", type=click.Path(path_type=Path))
@click.option("--per-class", "mode", flag_value="per_class", help="Loss per class (channel or true class).")
@click.option("--per-output", "mode", flag_value="per_output", help="Loss per output, weights and penalties.")
@click.option("--per-sample", "mode", flag_value="per_sample", help="The worst samples and the distribution.")
@click.option("--top", type=click.IntRange(min=1), default=10, show_default=True, help="Rows for --per-sample.")
@common_options
@guarded
def breakdown(model: Path, data: Path, mode: str | None, top: int, **kw: Any):
    """Where the loss comes from: per class, per output or per sample, adding back up to evaluate."""
    if mode is None:
        raise UsageError("breakdown needs one of --per-class, --per-output or --per-sample")
    from losscheck.breakdown import run_breakdown

    cfg = _config(model, data, kw)
    return run_breakdown(cfg, mode, top, _progress(cfg.progress))


@main.command()
@click.argument("model", type=click.Path(path_type=Path))
@common_options
@guarded
def inspect(model: Path, **kw: Any):
    """Loss configuration, training-dependent layers, regularizers, saved-by version: no data needed."""
    from losscheck.inspect import run_inspect

    cfg = _config(model, None, kw)
    return run_inspect(cfg, _progress(cfg.progress))


if __name__ == "__main__":  # pragma: no cover
    main()
