"""The callback's measuring step after an epoch: the figures at the current weights (one inference
pass, one combined training-mode pass) plus the ones fit logged, into one `Measurements`."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from losscheck.measurements import Measurements, frozen_mapping
from losscheck.probes.batching import probe_limit


def is_number(value: Any) -> bool:
    """Whether float(value) works (fit's logs may hold other values)."""
    try:
        float(value)
    except (TypeError, ValueError):
        return False
    return True


def measure_epoch(loaded: Any, data: Any, cfg: Any, logs: Mapping[str, Any]) -> Measurements:
    """The figures at the current weights plus the logged ones, the gap facts the rules read (with
    fit_logged as fit's figure), the data record and the notes."""
    from losscheck.loading.pipelines import data_measurements
    from losscheck.probes.gaps import gap_measurements, training_mode_figures
    from losscheck.probes.prober import Prober
    from losscheck.probes.weights import SampleWeightStats

    prober = Prober(loaded, data, cfg.batch_size, cfg.seed)
    sw_stats = SampleWeightStats(prober)
    inf = prober.inference_pass([sw_stats])
    figures: dict[str, float] = {}
    if "loss" in logs and is_number(logs["loss"]):
        figures["fit_logged"] = float(logs["loss"])
    loop = loaded.loop
    notes: list[str] = []
    if loop.customized:  # Keras's own evaluate, through the model's own steps
        from losscheck.probes.compare import own_logs

        own_logs(loaded.model, data, cfg.batch_size, "evaluate", figures, notes)
    else:
        figures["evaluate"] = inf.evaluate
    if inf.manual is not None and loop.manual_applies:
        figures["manual"] = inf.manual
    if loop.manual_applies:
        figures["regularization"] = inf.regularization
    cw = cfg.class_weight
    limit = probe_limit(cfg, data.n)
    if loop.training_mode_comparable:
        figures.update(training_mode_figures(prober, cw, limit)[0])
    if "val_loss" in logs and is_number(logs["val_loss"]):
        figures["val_loss_logged"] = float(logs["val_loss"])
    decomposed = figures if loop.decomposable else {k: v for k, v in figures.items() if k != "fit_logged"}
    gaps = gap_measurements(decomposed, prober, class_weight=cw,
                            sample_weight=sw_stats.summary() if loop.manual_applies else None, probe_samples=limit,
                            fit_steps=len(list(data.batch_bounds(cfg.batch_size))), fit_figure="fit_logged",
                            overridden=False)
    from losscheck.probes.compare import loop_facts

    return Measurements("callback", cfg.rtol, frozen_mapping(figures), gaps=gaps,
                        data=data_measurements(data, cfg.batch_size),
                        loop=loop_facts(loop, figures, "evaluate" in figures), notes=(*loaded.notes, *notes))
