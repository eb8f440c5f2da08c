"""`losscheck breakdown`: per-class, per-output and per-sample decomposition.

One compiled inference pass (the one `compare` uses for evaluate and the numpy reference) feeds an
observer that splits each batch's loss exactly (see decompose.py for the identity). The rows add
back up to the data loss; the data loss plus the penalties is what `evaluate` reports.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from losscheck.config import Config
from losscheck.errors import UsageError
from losscheck.findings import Figure, Report

Progress = Callable[..., None]

MODES = ("per_class", "per_output", "per_sample")


def run_breakdown(cfg: Config, mode: str, top: int = 10, progress: Progress = lambda _m: None) -> Report:
    if mode not in MODES:
        raise UsageError(f"unknown breakdown mode {mode!r}; use --per-class, --per-output or --per-sample")
    from losscheck.breakdown.observers import ClassObserver, SampleObserver
    from losscheck.breakdown.results import (
        breakdown_measurements,
        class_section,
        output_section,
        sample_section,
    )
    from losscheck.commands.common import build_header, load_inputs
    from losscheck.probes import Prober

    loaded, data = load_inputs(cfg, progress)
    assert data is not None
    try:
        prober = Prober(loaded, data, cfg.batch_size, cfg.seed)
        observer: Any = None
        if mode == "per_class":
            observer = ClassObserver(prober, data.n)
        elif mode == "per_sample":
            observer = SampleObserver(prober, data.n, top)
        observers = [observer] if observer is not None else []
        metrics_obs = None
        if mode == "per_class":
            from losscheck.probes.metrics import MetricsObserver

            metrics_obs = MetricsObserver(loaded, per_class=True)
            observers.append(metrics_obs)
        advance = getattr(progress, "advance", None)
        if advance is not None:  # the CLI's progress protocol: (msg, total=) then advance()
            progress("inference pass (evaluate + per-element losses)", total=-(-data.n // cfg.batch_size))
            observers.append(lambda _b: advance())
        else:
            progress("inference pass (evaluate + per-element losses)")
        inf = prober.inference_pass(observers, metrics=metrics_obs is not None)
        if inf.manual is None:
            raise UsageError(f"breakdown cannot recompute the loss of outputs {inf.manual_unsupported}; "
                             "losscheck needs their per-element values")
        report = Report("breakdown", build_header(cfg, loaded, data))
        report.figures["evaluate"] = Figure(inf.evaluate, "what model.evaluate(...) reports (total loss)")
        report.figures["manual"] = Figure(inf.manual, "losscheck's numpy data loss (Keras's semantics, penalties excluded)")
        report.figures["regularization"] = Figure(inf.regularization, "penalties (model.losses) included in evaluate")
        if mode == "per_class":
            report.sections.update(class_section(observer, inf))
            assert metrics_obs is not None
            rows = metrics_obs.per_class_rows()
            if rows:
                report.sections["per_class_metrics"] = rows
            if inf.metrics:
                report.sections["metrics"] = metrics_obs.section(inf.metrics)
        elif mode == "per_output":
            from losscheck.probes.penalties import regularization_by_layer

            progress("regularization per layer")
            layers = regularization_by_layer(prober, inf.regularization)
            report.sections.update(output_section(prober, inf, layers))
        else:
            report.sections.update(sample_section(observer, inf))
        from losscheck.measurements import Measurements
        from losscheck.rules import judge_areas

        outputs = len(getattr(observer, "outputs", prober.outputs))  # the outputs the rows cover
        measured = breakdown_measurements(mode, report.sections, outputs, data.n, cfg.batch_size)
        findings = list(judge_areas(Measurements("breakdown", rtol=cfg.rtol, breakdown=measured), ("breakdown",)))
        # loading notes about the fit probe do not concern breakdown (it never fits)
        notes = [n for n in loaded.notes if "fit probe" not in n] + list(getattr(observer, "notes", []))
        if notes:
            report.sections["notes"] = notes
        report.findings = findings
        return report
    finally:
        data.close()


from losscheck._entry import make_callable  # noqa: E402

make_callable(__name__, "breakdown")  # losscheck.breakdown(...) is the Python API's breakdown
