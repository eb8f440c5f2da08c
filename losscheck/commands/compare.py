"""`losscheck compare`: load -> probe -> reference -> attribute -> Report. No printing here."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

from losscheck.commands.common import build_header, check_loaded, input_names, load_inputs, probe_limit
from losscheck.config import Config
from losscheck.decomposition import finite_rows
from losscheck.findings import Figure, Finding, Report
from losscheck.measurements import Measurements, SemanticMeasurements, frozen_mapping
from losscheck.rules import judge_areas
from losscheck.taxonomy import FAMILIES, family_figure

Progress = Callable[[str], None]

DESCRIPTIONS = {
    "fit_epoch": "what model.fit(..., epochs=1, shuffle=False) reports from the saved weights and optimizer "
                 "state (every variable is restored afterwards; the file is never written)",
    "train_mode_class_weighted": "train_mode with --class-weight applied as fit applies it",
    "train_mode": "every layer in training behaviour, saved weights, no update, no class weight (what a fit step "
                  "measures first)",
    "train_mode_dropout_only": "only Dropout-family layers in training behaviour",
    "train_mode_batchnorm_only": "only BatchNormalization in training behaviour (batch statistics)",
    "train_mode_noise_only": "only noise/augmentation layers in training behaviour",
    "train_mode_custom_only": "only the other layers whose call() takes `training` (custom layers) in training "
                              "behaviour",
    "evaluate_float32": "evaluate of an in-memory copy of the model with float32 dtype policies and the same "
                        "weights",
    "evaluate_probe_subset": "what model.evaluate(...) reports on the --probe-samples subset (what the "
                             "training-mode figures are compared with)",
    "evaluate": "what model.evaluate(...) reports (total loss)",
    "manual": "losscheck's numpy recomputation of the data loss from inference outputs (no penalties)",
    "regularization": "penalties (model.losses) included in evaluate",
    "evaluate_val": "what val_loss / model.evaluate(...) on the validation data reports at the saved weights",
    "fit_val": "the val_loss fit logs after the fit_epoch probe's epoch (validation data evaluated with the "
               "weights after that epoch, as fit(validation_data=...) / fit(validation_split=F) reports it)",
}


#: Figures measured on the --probe-samples subset only.
SUBSET_FIGURES = ("train_mode_class_weighted", "train_mode", *(family_figure(f) for f in FAMILIES),
                  "evaluate_probe_subset")


def run_compare(cfg: Config, progress: Progress = lambda _msg: None, *, validation_data=None) -> Report:
    """`validation_data`: an already loaded validation Dataset (instead of cfg.val_path)."""
    history = None
    if cfg.history_path is not None:
        from losscheck.loading.history import read_history

        history = read_history(cfg.history_path)  # bad history files fail before TensorFlow is imported
    from losscheck.probes import Prober, fit_epoch_restoring

    loaded, data = load_inputs(cfg, progress)
    assert data is not None
    check_loaded(cfg, loaded, data)
    val, split_at = validation_data, None
    dropped_metrics = None
    try:
        if validation_data is not None or cfg.val_path is not None or cfg.validation_split is not None:
            from losscheck.validation import validation_inputs

            data, val, split_at = validation_inputs(cfg, loaded, data, validation_data, input_names(loaded.model),
                                                    progress)
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
        figures["fit_epoch"] = fit_epoch_restoring(loaded.model, data, cfg.batch_size, cw, cfg.seed, val, fit_logs)
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
        m = Measurements("compare", rtol=cfg.rtol, figures=frozen_mapping(figures), model=model_facts(loaded),
                         gaps=gaps, lossfn=lossfn, semantics=semantics)
        ctx = SimpleNamespace(inference=inf, config=cfg, sections=lossfn_sections(lossfn))
        if semantics is not None:
            ctx.sections["natural_numpy"] = semantics.section()
        findings: list[Finding] = list(judge_areas(m, ("gaps", "legacy", "lossfn", "semantics")))
        extra_sections: dict[str, Any] = {}
        extra_notes: list[str] = []
        measured_validation = measured_history = None
        if val is not None and inf_val is not None:
            from losscheck.validation import validation_measurements, validation_section

            measured_validation = validation_measurements(figures, gaps, fam, data, val, split_at, cfg, inf, inf_val,
                                                          classes_train, classes_val)
            extra_sections["validation"], validation_notes = validation_section(figures, measured_validation)
            extra_notes += validation_notes
        if history is not None:
            from losscheck.history import match

            found = match(history, figures, cfg.rtol, val is not None)
            extra_sections["history"] = found.section
            extra_notes += found.notes
            measured_history = found.facts
        from losscheck.loading.sources import data_measurements
        from losscheck.probes.metrics import metric_measurements

        m = dataclasses.replace(m, data=data_measurements(data, cfg.batch_size),
                                metrics=metric_measurements(metrics_obs, targets_obs, inf, loaded, data),
                                validation=measured_validation, history=measured_history)
        findings += judge_areas(m, ("data", "metrics", "validation", "history"))

        report = Report("compare", build_header(cfg, loaded, data))
        for key, value in figures.items():
            extra = {}
            if limit is not None and key in SUBSET_FIGURES:
                extra["samples"] = limit
            report.figures[key] = Figure(float(value), DESCRIPTIONS.get(key, key), extra)
        report.findings = findings
        report.sections["decomposition"] = finite_rows(gaps.decomposition)
        report.sections.update(ctx.sections)
        report.sections.update(extra_sections)
        if val is not None:
            report.header["data"]["validation"] = (
                {"path": str(cfg.data_path), "samples": val.n, "validation_split": cfg.validation_split,
                 "split_at": split_at} if split_at is not None
                else {"path": str(getattr(val, "path", cfg.val_path)), "samples": val.n})
        metrics_section = metrics_obs.section(inf.metrics)
        if metrics_section:
            report.sections["metrics"] = metrics_section
        notes = list(loaded.notes)
        if inf.manual_unsupported:
            notes.append(f"manual is not computed for outputs {inf.manual_unsupported}")
        if gaps.families.get("frozen_batchnorm"):
            notes.append(frozen_batchnorm_note(list(gaps.families["frozen_batchnorm"]), loaded.info.legacy))
        report.sections["notes"] = notes + extra_notes
        return report
    finally:
        if dropped_metrics is not None:
            loaded.model._compile_metrics = dropped_metrics
        data.close()
        if val is not None and val is not validation_data:
            val.close()


def lossfn_sections(lossfn) -> dict[str, Any]:
    """The loss-function area's report sections: reduction_trace (when measured), check_notes (when a
    measurement could not run)."""
    sections: dict[str, Any] = {}
    if lossfn.reduction_trace is not None:
        sections["reduction_trace"] = dict(lossfn.reduction_trace)
    if lossfn.errors:
        sections["check_notes"] = list(lossfn.errors)
    return sections


def frozen_batchnorm_note(layers: list[str], legacy: bool) -> str:
    """Why frozen BatchNormalization layers are no cause of a gap (and what tf.keras 2.x did)."""
    shown = ", ".join(layers[:6]) + (f" and {len(layers) - 6} more" if len(layers) > 6 else "")
    text = (f"BatchNormalization layers {shown} are frozen (trainable=False): Keras 3 runs them in inference "
            "mode (moving statistics, never updated) in fit as in evaluate, so they are no cause of a gap here.")
    if legacy:
        text += (" tf.keras 2.x, which saved this file, did the same for a frozen BatchNormalization; only "
                 "TF1-style (tf.compat.v1) BatchNormalization used batch statistics in fit when frozen.")
    return text


from losscheck._entry import make_callable  # noqa: E402

make_callable(__name__, "compare")  # losscheck.compare(...) is the Python API's compare
