"""`breakdown`'s measuring step: one compiled inference pass (the one `compare` uses for evaluate and
the numpy reference) feeding the mode's observer, which splits each batch's loss exactly (see
losscheck/breakdown/decompose.py for the identity), into one `Measured`."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from losscheck.core.config import Config
from losscheck.core.errors import UsageError
from losscheck.measurements import Measured, Measurements, frozen_mapping

Progress = Callable[..., None]


def measure_breakdown(cfg: Config, loaded: Any, data: Any, mode: str, top: int, progress: Progress) -> Measured:
    """evaluate, manual, regularization and the `mode` sections ("per_class", "per_output",
    "per_sample"; `top` rows per list) of the loaded model on `data`, with the breakdown record."""
    from losscheck.breakdown.observers import ClassObserver, SampleObserver
    from losscheck.breakdown.results import (
        breakdown_measurements,
        class_section,
        output_section,
        sample_section,
    )
    from losscheck.probes import Prober

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
    loop = loaded.loop
    if not loop.manual_applies:
        own = [s for s in loop.steps if s in ("test_step", "compute_loss")]
        raise UsageError("breakdown splits the compiled loss into its parts, and this model's loss is "
                         + (f"computed by its own {' and '.join(own)}" if own else "not compiled (only add_loss)")
                         + "; run `losscheck compare` for Keras's own figures of this model")
    inf = prober.inference_pass(observers, metrics=metrics_obs is not None)
    if inf.manual is None:
        raise UsageError(f"breakdown cannot recompute the loss of outputs {inf.manual_unsupported}; "
                         "losscheck needs their per-element values")
    figures = {"evaluate": inf.evaluate, "manual": inf.manual, "regularization": inf.regularization}
    sections: dict[str, Any] = {}
    if mode == "per_class":
        sections.update(class_section(observer, inf))
        assert metrics_obs is not None
        rows = metrics_obs.per_class_rows()
        if rows:
            sections["per_class_metrics"] = rows
        if inf.metrics:
            sections["metrics"] = metrics_obs.section(inf.metrics)
    elif mode == "per_output":
        from losscheck.probes.penalties import regularization_by_layer

        progress("regularization per layer")
        layers = regularization_by_layer(prober, inf.regularization)
        sections.update(output_section(prober, inf, layers))
    else:
        sections.update(sample_section(observer, inf))
    outputs = len(getattr(observer, "outputs", prober.outputs))  # the outputs the rows cover
    measured = breakdown_measurements(mode, sections, outputs, data.n, cfg.batch_size)
    # loading notes about the fit probe do not concern breakdown (it never fits)
    notes = [n for n in loaded.notes if "fit probe" not in n] + list(getattr(observer, "notes", []))
    m = Measurements("breakdown", rtol=cfg.rtol, figures=frozen_mapping(figures), breakdown=measured)
    return Measured(m, sections=sections, notes=tuple(notes))
