"""`compare`'s measuring step: every pass `losscheck compare` makes, into one `Measured`.

One inference pass on the training data (evaluate, the numpy reference, penalties, the loss-function,
metric, target and sample-weight observers), one on the validation data when there is one, the
training-mode passes, a float32 copy for mixed precision, the one-epoch fit (state restored), the
random spread of the training-mode figures; then the frozen records of every area.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from losscheck.commands.common import probe_limit
from losscheck.config import Config
from losscheck.measurements import Measured, Measurements, SemanticMeasurements, frozen_mapping

Progress = Callable[[str], None]


def measure_compare(cfg: Config, loaded: Any, data: Any, val: Any, split_at: int | None, history: Any,
                    progress: Progress) -> Measured:
    """Every figure and area record of `compare` on the loaded model and data. `val`: the validation
    Dataset or None (`split_at`: where --validation-split cut DATA); `history`: the read --history or
    None. The model's compiled metrics are put back if they had to be left out for fit."""
    from losscheck.probes import Prober, fit_epoch_restoring

    dropped_metrics = None
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
            from losscheck.validation import SafeClassObserver

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
        figures["evaluate"] = inf.evaluate
        if inf.manual is not None:
            figures["manual"] = inf.manual
        figures["regularization"] = inf.regularization
        inf_val = None
        if val is not None:
            progress("inference pass on the validation data")
            val_prober = Prober(loaded, val, cfg.batch_size, cfg.seed)
            classes_val = SafeClassObserver(val_prober, val.n)
            inf_val = val_prober.inference_pass([classes_val])
            figures["evaluate_val"] = inf_val.evaluate
        cw = cfg.class_weight
        limit = probe_limit(cfg, data.n)
        progress("training-mode passes")
        from losscheck.probes.gaps import training_mode_figures

        train_figures, passes = training_mode_figures(prober, cw, limit)
        figures.update(train_figures)
        main_batches = list(prober.last_batches)
        from losscheck.probes import low_precision_layers

        low = low_precision_layers(loaded.model)
        if low:
            progress("inference pass of a float32 copy (mixed precision)")
            f32 = prober.evaluate_float32()
            if f32 is not None:
                figures["evaluate_float32"] = f32
        progress("one-epoch fit (on the loaded model, its state restored afterwards)")
        # same figure as a fresh copy from the file (same weights, optimizer state, layer seeds), one load less
        fit_logs: dict[str, float] = {}
        from losscheck.probes.distribute import scope, strategy_for

        strategy = strategy_for(cfg.distribute)
        with scope(strategy):  # Keras's own fit, distributed under --distribute
            figures["fit_epoch"] = fit_epoch_restoring(loaded.model, data, cfg.batch_size, cw, cfg.seed, val,
                                                       fit_logs)
        if "val_loss" in fit_logs:
            figures["fit_val"] = fit_logs["val_loss"]

        from losscheck.loading.legacy import model_facts
        from losscheck.probes.gaps import gap_measurements, low_precision_facts
        from losscheck.probes.spread import random_spread

        spread = random_spread(figures, cfg.rtol, prober, passes, main_batches, inf, limit, progress)
        gaps = gap_measurements(figures, prober, class_weight=cw, sample_weight=sw_stats.summary(),
                                probe_samples=limit, fit_steps=len(list(data.batch_bounds(cfg.batch_size))),
                                low_precision=low_precision_facts(loaded.model, low) if low else None,
                                uncertainty=spread)
        semantics = SemanticMeasurements.of(inf.semantic) if inf.semantic and inf.manual is not None else None
        lossfn = measure_data(lossfn_static, lossfn_obs, loaded, data, cfg.batch_size, cfg.seed, inf)
        sections: dict[str, Any] = lossfn_sections(lossfn)
        if semantics is not None:
            sections["natural_numpy"] = semantics.section()
        section_notes: list[str] = []
        measured_validation = measured_history = None
        if val is not None and inf_val is not None:
            from losscheck.validation import validation_measurements, validation_section

            measured_validation = validation_measurements(figures, gaps, fam, data, val, split_at, cfg, inf, inf_val,
                                                          classes_train, classes_val)
            sections["validation"], validation_notes = validation_section(figures, measured_validation)
            section_notes += validation_notes
        if history is not None:
            from losscheck.history import match

            found = match(history, figures, cfg.rtol, val is not None)
            sections["history"] = found.section
            section_notes += found.notes
            measured_history = found.facts
        from losscheck.loading.sources import data_measurements
        from losscheck.probes.metrics import metric_measurements

        parity, parity_notes = None, []
        if cfg.parity or strategy is not None:
            from losscheck.probes.parity import measure_parity

            parity, parity_notes = measure_parity(cfg, loaded, data, figures, low, strategy, fam.names("batchnorm"),
                                                  progress)
        m = Measurements("compare", rtol=cfg.rtol, figures=frozen_mapping(figures), model=model_facts(loaded),
                         gaps=gaps, lossfn=lossfn, semantics=semantics,
                         data=data_measurements(data, cfg.batch_size),
                         metrics=metric_measurements(metrics_obs, targets_obs, inf, loaded, data),
                         validation=measured_validation, history=measured_history, parity=parity)
        metrics_section = metrics_obs.section(inf.metrics)
        if metrics_section:
            sections["metrics"] = metrics_section
        notes = list(loaded.notes)
        if inf.manual_unsupported:
            notes.append(f"manual is not computed for outputs {inf.manual_unsupported}")
        notes += parity_notes
        return Measured(m, sections=sections, notes=tuple(notes), section_notes=tuple(section_notes))
    finally:
        if dropped_metrics is not None:
            loaded.model._compile_metrics = dropped_metrics


def lossfn_sections(lossfn: Any) -> dict[str, Any]:
    """The loss-function area's report sections: reduction_trace (when measured), check_notes (when a
    measurement could not run)."""
    sections: dict[str, Any] = {}
    if lossfn.reduction_trace is not None:
        sections["reduction_trace"] = dict(lossfn.reduction_trace)
    if lossfn.errors:
        sections["check_notes"] = list(lossfn.errors)
    return sections
