"""`breakdown`'s measuring step: one compiled inference pass (the one `compare` uses for evaluate and
the numpy reference) feeding the mode's observer, which splits each batch's loss exactly (see
decompose.py for the identity; observers.py: the observers; rows.py: the rows from their sums), into
one `Measurements`."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from losscheck.core.config import Config
from losscheck.core.errors import UsageError
from losscheck.measurements import Measurements, frozen, frozen_mapping

Progress = Callable[..., None]


def measure_breakdown(cfg: Config, loaded: Any, data: Any, mode: str, top: int, progress: Progress) -> Measurements:
    """evaluate, manual, regularization and the breakdown record of `mode` ("per_class", "per_output",
    "per_sample"; `top` rows per list) of the loaded model on `data`."""
    from losscheck.probes.breakdown.observers import ClassObserver, SampleObserver
    from losscheck.probes.breakdown.rows import (
        breakdown_measurements,
        class_section,
        output_section,
        sample_section,
    )
    from losscheck.probes.prober import Prober

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
    parts: dict[str, Any] = {}
    metric_rows = None
    if mode == "per_class":
        parts.update(class_section(observer, inf))
        assert metrics_obs is not None
        parts["per_class_metrics"] = metrics_obs.per_class_rows()
        if inf.metrics:
            metric_rows = frozen(metrics_obs.section(inf.metrics))
    elif mode == "per_output":
        from losscheck.probes.penalties import regularization_by_layer

        progress("regularization per layer")
        layers = regularization_by_layer(prober, inf.regularization)
        parts.update(output_section(prober, inf, layers))
    else:
        parts.update(sample_section(observer, inf))
    outputs = len(getattr(observer, "outputs", prober.outputs))  # the outputs the rows cover
    measured = breakdown_measurements(mode, parts, outputs, data.n, cfg.batch_size)
    notes = (*loaded.notes, *getattr(observer, "notes", []))
    return Measurements("breakdown", rtol=cfg.rtol, figures=frozen_mapping(figures), breakdown=measured,
                        notes=notes, metric_rows=metric_rows)
