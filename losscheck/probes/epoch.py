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


#: the attribute of a callback's data source that keeps its Prober between checks
_KEPT = "_losscheck_prober"


def kept_prober(loaded: Any, data: Any, cfg: Any) -> Any:
    """The Prober of the last check on this data source when it probed the same model in the same
    compiled state (the same loss, optimizer and metrics objects, the same variables) with the same
    batch size, seed and class weights; else a new one, kept on the data source for the next check. Its
    compiled passes then run again without tracing; a recompiled model gets a new Prober. The data source
    is the callback's own (made once per callback), so what is kept lives as long as the callback."""
    from losscheck.probes.prober import Prober

    model = loaded.model
    key = (id(model), id(getattr(model, "_compile_loss", None)), id(getattr(model, "optimizer", None)),
           id(getattr(model, "_compile_metrics", None)), tuple(id(v) for v in model.trainable_variables),
           tuple(id(v) for v in model.non_trainable_variables), cfg.batch_size, cfg.seed,
           tuple(sorted((cfg.class_weight or {}).items())))
    kept = getattr(data, _KEPT, None)
    if kept is not None and kept[0] == key and kept[1].model is model:
        return kept[1]
    prober = Prober(loaded, data, cfg.batch_size, cfg.seed)
    try:
        setattr(data, _KEPT, (key, prober))
    except (AttributeError, TypeError):  # a data source that takes no attributes: nothing is kept
        pass
    return prober


def measure_epoch(loaded: Any, data: Any, cfg: Any, logs: Mapping[str, Any]) -> Measurements:
    """The figures at the current weights plus the logged ones, the gap facts the rules read (with
    fit_logged as fit's figure), the data record and the notes."""
    from losscheck.loading.pipelines import data_measurements
    from losscheck.probes.gaps import gap_measurements, training_mode_figures, training_mode_variants
    from losscheck.probes.weights import SampleWeightStats

    prober = kept_prober(loaded, data, cfg)
    sw_stats = SampleWeightStats(prober)
    limit = probe_limit(cfg, data.n)
    loop = loaded.loop
    # the training-mode passes run in the same compiled pass where they can (probes/joint.py)
    variants = training_mode_variants(prober, limit) if loop.training_mode_comparable else None
    inf = prober.inference_pass([sw_stats], variants=variants, class_weight=cfg.class_weight, limit=limit)
    figures: dict[str, float] = {}
    if "loss" in logs and is_number(logs["loss"]):
        figures["fit_logged"] = float(logs["loss"])
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
