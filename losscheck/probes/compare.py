"""`compare`'s measuring step: every pass `losscheck compare` makes, into one `Measurements`.

One inference pass on the training data (evaluate, the numpy reference, penalties, the loss-function,
metric, target and sample-weight observers), one on the validation data when there is one, the
training-mode passes, a float32 copy for mixed precision, the one-epoch fit (state restored), the
random spread of the training-mode figures; then the frozen records of every area.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import numpy as np

from losscheck.core.config import Config
from losscheck.core.errors import first_line
from losscheck.measurements import Measurements, SemanticMeasurements, frozen, frozen_mapping
from losscheck.probes.batching import probe_limit

Progress = Callable[[str], None]


def measure_compare(cfg: Config, loaded: Any, data: Any, val: Any, split_at: int | None, history: Any,
                    progress: Progress) -> Measurements:
    """Every figure and area record of `compare` on the loaded model and data. `val`: the validation
    Dataset or None (`split_at`: where --validation-split cut DATA); `history`: the read --history or
    None. The model's compiled metrics are put back if they had to be left out for fit."""
    from losscheck.probes.prober import Prober

    dropped_metrics = None
    loop = loaded.loop
    from losscheck.loading.memory import state_variables

    as_loaded = [(var, np.array(var)) for var in state_variables(loaded.model)]
    try:
        prober = Prober(loaded, data, cfg.batch_size, cfg.seed)
        fam = prober.families
        figures: dict[str, float] = {}
        from losscheck.probes.weights import SampleWeightStats

        sw_stats = SampleWeightStats(prober)
        from losscheck.probes.lossfn import LossFnObservers, measure_data, measure_static
        from losscheck.probes.metrics import MetricsObserver
        from losscheck.probes.targets import TargetsObserver

        classes_train = classes_val = None
        if val is not None:
            from losscheck.probes.validation import SafeClassObserver

            classes_train = SafeClassObserver(prober, data.n)
        metrics_obs, targets_obs = MetricsObserver(loaded), TargetsObserver(loaded)
        lossfn_static = measure_static(loaded)
        lossfn_obs = LossFnObservers.of(lossfn_static)
        progress("inference pass (evaluate + numpy reference)")
        inf = prober.inference_pass([sw_stats, *lossfn_obs.all(), metrics_obs, targets_obs]
                                    + ([classes_train] if classes_train else []),
                                    metrics=True)
        if inf.metrics_error:
            loaded.notes.append(inf.metrics_error + "; they are left out")
            dropped_metrics = loaded.model._compile_metrics
            loaded.model._compile_metrics = None  # as compiled without them, so that fit runs; put back below
        loop_notes: list[str] = []
        keras_logs: dict[str, float] | None = None
        if loop.customized:  # Keras's own evaluate, through the model's own steps
            progress("Keras's evaluate (the model's own steps)")
            keras_logs = own_logs(loaded.model, data, cfg.batch_size, "evaluate", figures, loop_notes)
        else:
            figures["evaluate"] = inf.evaluate
        if inf.manual is not None and loop.manual_applies:
            figures["manual"] = inf.manual
        if loop.manual_applies:
            figures["regularization"] = inf.regularization
        inf_val = None
        if val is not None:
            progress("inference pass on the validation data")
            val_prober = Prober(loaded, val, cfg.batch_size, cfg.seed)
            classes_val = SafeClassObserver(val_prober, val.n)
            inf_val = val_prober.inference_pass([classes_val])
            if loop.customized:
                own_logs(loaded.model, val, cfg.batch_size, "evaluate_val", figures, loop_notes)
            else:
                figures["evaluate_val"] = inf_val.evaluate
        cw = cfg.class_weight
        limit = probe_limit(cfg, data.n)
        from losscheck.probes.gaps import training_mode_figures

        passes: dict = {}
        if loop.training_mode_comparable:
            progress("training-mode passes")
            train_figures, passes = training_mode_figures(prober, cw, limit)
            figures.update(train_figures)
        main_batches = list(prober.last_batches)
        from losscheck.probes.precision import low_precision_layers

        low = low_precision_layers(loaded.model)
        if low and not loop.customized:
            progress("inference pass of a float32 copy (mixed precision)")
            f32 = prober.evaluate_float32()
            if f32 is not None:
                figures["evaluate_float32"] = f32
        # same figure as a fresh copy from the file (same weights, optimizer state, layer seeds), one load less
        fit_logs: dict[str, float] = {}
        from losscheck.probes.distribute import scope, strategy_for

        strategy = strategy_for(cfg.distribute)
        if loaded.optimizer_problem is None:  # else the note says why fit is not run
            progress("one-epoch fit (on the loaded model, its state restored afterwards)")
            for var, value in as_loaded:  # e.g. a SeedGenerator a pass drew from: fit starts as a fresh load
                var.assign(value)
            with scope(strategy):  # Keras's own fit, distributed under --distribute
                fit = own_fit(loaded, data, cfg, val, fit_logs, loop_notes)
            if fit is not None:
                figures["fit_epoch"] = fit
            else:
                loop_notes.append(f"fit_epoch is not reported: the model's own train_step logs no 'loss' (it logs "
                                  f"{log_list(fit_logs)})")
            if "val_loss" in fit_logs:
                figures["fit_val"] = fit_logs["val_loss"]
            if loop.customized:
                figures.update(own_loss_figures(fit_logs, "fit_epoch", figures))

        from losscheck.loading.legacy import model_facts
        from losscheck.probes.gaps import gap_measurements, low_precision_facts
        from losscheck.probes.spread import random_spread

        spread = random_spread(figures, cfg.rtol, prober, passes, main_batches, inf, limit, progress)
        # fit - evaluate is decomposed only when both run Keras's own steps; the custom-step finding says so
        decomposed = figures if loop.decomposable else {k: v for k, v in figures.items() if k != "fit_epoch"}
        gaps = gap_measurements(decomposed, prober, class_weight=cw,
                                sample_weight=sw_stats.summary() if loop.manual_applies else None,
                                probe_samples=limit, fit_steps=len(list(data.batch_bounds(cfg.batch_size))),
                                low_precision=low_precision_facts(loaded.model, low) if low else None,
                                uncertainty=spread)
        semantics = SemanticMeasurements.of(inf.semantic) if inf.semantic and "manual" in figures else None
        lossfn = measure_data(lossfn_static, lossfn_obs, loaded, data, cfg.batch_size, cfg.seed, inf,
                              reported=loop.manual_applies)
        measured_validation = measured_history = None
        if val is not None and inf_val is not None and "evaluate" in figures and "evaluate_val" in figures:
            from losscheck.probes.validation import validation_measurements

            measured_validation = validation_measurements(decomposed, gaps, fam, data, val, split_at, cfg, inf,
                                                          inf_val, classes_train, classes_val)
        if history is not None:
            from losscheck.probes.history import match

            measured_history = match(history, figures, cfg.rtol, val is not None)
        # an overridden test_step or compute_metrics: evaluate's metric values are Keras's logs
        own_steps = " and ".join(s for s in loop.steps if s in ("test_step", "compute_metrics"))
        own_metrics = keras_logs if own_steps else None
        from losscheck.loading.pipelines import data_measurements
        from losscheck.probes.metric_facts import metric_measurements

        parity, parity_notes = None, []
        if (cfg.parity or strategy is not None) and "evaluate" not in figures:
            parity_notes.append("--parity / --distribute: not measured, since evaluate is not reported for this model")
        elif cfg.parity or strategy is not None:
            from losscheck.probes.parity import measure_parity

            parity, parity_notes = measure_parity(cfg, loaded, data, figures, low, strategy, fam.names("batchnorm"),
                                                  progress)
        metric_rows = metrics_obs.section(inf.metrics if own_metrics is None else own_metrics)
        if own_metrics is not None:
            for row in metric_rows.values():
                row.update(manual=None, reason="the model's own " + own_steps + " computes its metrics")
        notes = list(loaded.notes) + loop_notes
        if inf.manual_unsupported and "manual" in figures:
            notes.append(f"manual is not computed for outputs {inf.manual_unsupported}")
        notes += parity_notes
        return Measurements("compare", rtol=cfg.rtol, figures=frozen_mapping(figures), model=model_facts(loaded),
                            gaps=gaps, lossfn=lossfn, semantics=semantics,
                            data=data_measurements(data, cfg.batch_size),
                            metrics=(metric_measurements(metrics_obs, targets_obs, inf, loaded, data)
                                     if own_metrics is None else None),
                            loop=loop_facts(loop, figures, keras_logs is not None),
                            validation=measured_validation, history=measured_history, parity=parity,
                            notes=tuple(notes), metric_rows=frozen(metric_rows))
    finally:
        if dropped_metrics is not None:
            loaded.model._compile_metrics = dropped_metrics


def own_fit(loaded: Any, data: Any, cfg: Config, val: Any, logs: dict[str, float], notes: list[str]) -> float | None:
    """fit_epoch_restoring with the validation data; for a model with its own training loop whose
    evaluation Keras cannot run (fit(validation_data=...) raises in Keras too), the fit without it and a
    note that fit_val is not reported."""
    from losscheck.probes.fitting import fit_epoch_restoring

    def run(validation: Any) -> float | None:  # every variable is put back after each try
        return fit_epoch_restoring(loaded.model, data, cfg.batch_size, cfg.class_weight, cfg.seed, validation, logs)

    if val is None or not loaded.loop.customized:
        return run(val)
    try:
        return run(val)
    except Exception as exc:  # noqa: BLE001 - Keras's own fit failing on the validation data is reported
        notes.append(f"fit_val is not reported: Keras's own fit(validation_data=...) fails on this model "
                     f"({type(exc).__name__}: {first_line(exc, 120)}); the fit figures come from a fit without it")
        logs.clear()
        return run(None)


def own_logs(model: Any, data: Any, batch_size: int, figure: str, figures: dict[str, float],
             notes: list[str]) -> dict[str, float] | None:
    """Keras's model.evaluate logs on `data` (None, with a note, when evaluate fails); its `loss` becomes
    `figure` and its other `*loss` keys `<figure>_<key>`."""
    from losscheck.probes.parity import keras_evaluate_logs

    try:
        logs = keras_evaluate_logs(model, data, batch_size)
    except Exception as exc:  # noqa: BLE001 - Keras's own evaluate failing is a fact to report, not a crash
        notes.append(f"{figure} is not reported: Keras's own model.evaluate fails on this model "
                     f"({type(exc).__name__}: {first_line(exc, 120)})")
        return None
    if "loss" in logs:
        figures[figure] = logs["loss"]
    else:
        notes.append(f"{figure} is not reported: the model's own test_step logs no 'loss' (it logs {log_list(logs)})")
    figures.update(own_loss_figures(logs, figure, figures))
    return logs


#: a log key losscheck reports as a figure of its own (the model's train/test step's extra losses)
_LOSS_KEY = re.compile(r"[A-Za-z0-9_]{1,64}")


def own_loss_figures(logs: dict[str, float], prefix: str, figures: dict[str, float]) -> dict[str, float]:
    """`<prefix>_<key>` for each log key other than `loss` that names a loss (ends in "loss", e.g.
    total_loss, kl_loss), not a validation log, and is not already a figure."""
    out = {}
    for key, value in logs.items():
        name = f"{prefix}_{key}"
        if (key != "loss" and key.endswith("loss") and not key.startswith("val_") and _LOSS_KEY.fullmatch(key)
                and name not in figures):
            out[name] = value
    return out


def log_list(logs: dict[str, float]) -> str:
    """The log keys, bounded, for a note (renderers escape notes)."""
    keys = [k[:40] for k in list(logs)[:8]]
    return ", ".join(keys) + (", ..." if len(logs) > 8 else "") if keys else "nothing"


def loop_facts(loop: Any, figures: dict[str, float], evaluated: bool) -> Any:
    """The frozen record of the model's own training loop (measurements.model.LoopMeasurements), or None
    for a model trained Keras's default way."""
    from losscheck.measurements.model import LoopMeasurements

    if not loop.customized:
        return None
    return LoopMeasurements(steps=tuple(loop.steps), compiled_loss=loop.compiled_loss, add_loss=loop.add_loss,
                            training_mode=loop.training_mode_comparable, manual=loop.manual_applies,
                            decomposed=loop.decomposable, evaluated=evaluated and "evaluate" in figures,
                            own_figures=tuple(k for k in figures if k.startswith(("evaluate_", "fit_epoch_"))
                                              and k.endswith("loss")))

