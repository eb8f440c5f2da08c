"""`losscheck compare`: load -> probe -> reference -> attribute -> Report. No printing here."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import numpy as np

from losscheck.attribution import Evidence, attribute
from losscheck.commands.common import (
    build_header,
    check_loaded,
    input_names,
    legacy_findings,
    load_inputs,
    probe_limit,
    regularized_layers,
)
from losscheck.config import Config
from losscheck.findings import Figure, Finding, Report
from losscheck.reference import EpochMean, output_batch_loss, prefix_mean
from losscheck.reference.reduction import loss_values_and_mask, match_rank, merge_masks
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


class SampleWeightStats:
    """Observer: the data loss with and without the sample weights, and normalized by them.

    normalized, per batch: sum_o lw_o * sum(w*l_o*m) / sum(w*m) over the output's loss elements (w
    broadcast to them as Keras's rank matching does, m the mask: 1 where no mask), batches weighted by
    size like Keras's loss; what reduction="mean_with_sample_weight" reports. Keras's own figure
    divides sum(w*l*m) by the count of unmasked elements instead."""

    def __init__(self, prober) -> None:
        self.prober = prober
        self.weighted, self.unweighted, self.normalized = EpochMean(), EpochMean(), EpochMean()
        self.per_element = False  # more than one weight per sample (e.g. per pixel)
        self.masked = False

    def __call__(self, b) -> None:
        if b.sample_weight is None:
            return
        p = self.prober
        unweighted = normalized = 0.0
        w = np.asarray(b.sample_weight, np.float64)
        if w.size > b.n:
            self.per_element = True
        for i, o in enumerate(p.outputs):
            spec = p.specs.get(o)
            if spec is None or o not in b.output_losses:
                continue
            lw = p.loaded.loss_weights[o]
            values, mask = b.values[i], b.masks[i]
            if values is None:  # the built-in formula's per-element losses, computed once for both figures
                values, own = loss_values_and_mask(spec, b.y[i], b.outputs[i], b.logits[i])
                mask = merge_masks(mask, own)
            unweighted += lw * output_batch_loss(spec, b.y[i], b.outputs[i], mask=mask, values=values)
            normalized += lw * weight_normalized(spec, b.y[i], b.outputs[i], w, mask, b.logits[i], values)
            self.masked = self.masked or b.masks[i] is not None
        self.weighted.add(b.data_loss, b.n)
        self.unweighted.add(unweighted, b.n)
        self.normalized.add(normalized, b.n)

    def summary(self) -> dict[str, Any] | None:
        if not self.weighted.count:
            return None
        return {"weighted": self.weighted.value, "unweighted": self.unweighted.value,
                "normalized": self.normalized.value, "per_element": self.per_element, "masked": self.masked}


def weight_normalized(spec, y, pred, w: np.ndarray, mask, logits, values) -> float:
    """sum(w*l*m) / sum(w*m) over one output's per-element losses l on one batch (0 when the weights
    of the unmasked elements sum to 0). A loss that already returns one scalar per batch has no
    elements to weight: its value is returned as it is."""
    if values is None:
        values, own = loss_values_and_mask(spec, y, pred, logits)
        mask = merge_masks(mask, own)
    v = np.asarray(values, np.float64)
    if v.ndim == 0:
        return float(v)
    m = np.ones_like(v) if mask is None else match_rank(np.asarray(mask, np.float64), v)[0]
    v, ww = match_rank(v, np.asarray(w, np.float64))
    ww = np.broadcast_to(ww, v.shape) * np.broadcast_to(m.reshape(m.shape + (1,) * (v.ndim - m.ndim)), v.shape)
    total = float(np.sum(ww))
    return float(np.sum(v * ww)) / total if total else 0.0


#: Figures measured on the --probe-samples subset only.
SUBSET_FIGURES = ("train_mode_class_weighted", "train_mode", *(family_figure(f) for f in FAMILIES),
                  "evaluate_probe_subset")


#: extra random draws for the spread of the random families' figures
EXTRA_DRAWS = 2
#: re-measure only when a size lies within this factor of the --rtol threshold (either side)
NEAR = 10.0
#: the draws run on at most this many leading samples (whole batches); the spread is scaled to the
#: samples of the main figures as 1/sqrt(samples)
SPREAD_SAMPLES = 256


def random_spread(ev: Evidence, prober, passes: dict, main_batches: list, inf, limit: int | None,
                  progress: Progress) -> dict[str, float]:
    """Standard deviation over 1 + EXTRA_DRAWS random draws of each random family's effect
    (train_mode_<family>_only - base, keyed by figure) and of the interaction (key "interaction").
    Measured only when a random family exists and one of those sizes is near the threshold (so
    whether it is reported could depend on the draw), on the first SPREAD_SAMPLES samples; {}
    otherwise, with no extra pass."""
    fam = prober.families
    random = [f for f in fam.STOCHASTIC if getattr(fam, f)]
    if not random or ev.base is None or None not in passes:
        return {}
    present = [f for f in fam.NAMES if getattr(fam, f)]
    threshold = ev.rtol * ev.scale

    def sizes(values: dict, base: float) -> dict[str, float]:
        out = {f"train_mode_{f}_only": values[f] - base for f in random if f in values}
        out["interaction"] = (values[None] - base) - sum(values[f] - base for f in present if f in values)
        return out

    if not any(threshold / NEAR <= abs(v) <= threshold * NEAR for v in sizes(passes, ev.base).values()):
        return {}
    main = limit if limit is not None else prober.data.n
    batch = prober.batch_size
    whole = (main // batch) * batch  # whole batches, so the inference pass's batches give the base
    sub = min(whole, math.ceil(SPREAD_SAMPLES / batch) * batch) if whole else main
    progress(f"training-mode passes with {EXTRA_DRAWS} more random draws on {sub} samples (sizes near --rtol)")
    variants = [None, *present]
    # the first draw is the main pass's, on its leading batches
    first = {f: prefix_mean([(n, b[f]) for n, b in main_batches], sub) for f in variants}
    draws = []
    for k in range(EXTRA_DRAWS + 1):
        values = first if k == 0 else prober.training_passes(variants, None, None if sub >= prober.data.n else sub,
                                                             draw=k)
        base = ev.base if sub == main else prefix_mean(inf.batch_totals, sub)
        draws.append(sizes(values, base))
    scale = math.sqrt(sub / main)
    return {key: float(np.std([d[key] for d in draws], ddof=1)) * scale for key in draws[0]}


def low_precision_facts(model, low: list) -> dict[str, Any]:
    """The compute dtypes / policies of the low-precision layers and whether an output layer is one."""
    outputs = {getattr(getattr(t, "_keras_history", None), "operation", None) for t in (model.outputs or [])}
    policies = sorted({str(getattr(getattr(lyr, "dtype_policy", None), "name", lyr.compute_dtype)) for lyr in low})
    out_layers = [lyr.name for lyr in low if lyr in outputs]
    return {"policies": policies, "layers": [lyr.name for lyr in low], "output_layers": out_layers}


def training_mode_figures(prober, class_weight: dict | None, limit: int | None) -> tuple[dict[str, float], dict]:
    """train_mode, train_mode_<family>_only for each family (taxonomy.FAMILIES) the model has,
    train_mode_class_weighted under class weights and, on a --probe-samples subset,
    evaluate_probe_subset: all from one compiled pass (the variants share their common layers; the
    subset's evaluate shares the inference trunk). Also returns the pass means by variant."""
    fam = prober.families
    present = [f for f in FAMILIES if getattr(fam, f)]
    passes, weighted = prober.training_passes_weighted([None] + present + (["inference"] if limit else []),
                                                       class_weight, limit)
    figures: dict[str, float] = {}
    if class_weight:
        figures["train_mode_class_weighted"] = weighted[None]
    figures["train_mode"] = passes[None]
    for family in present:
        figures[family_figure(family)] = passes[family]
    if limit is not None:
        figures["evaluate_probe_subset"] = passes["inference"]
    return figures, passes


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

        ev = Evidence(
            figures=figures, rtol=cfg.rtol,
            families=fam.named(),
            regularized_layers=regularized_layers(loaded.model),
            class_weight=cw, sample_weight=sw_stats.summary(),
            probe_samples=limit,
            fit_steps=len(list(data.batch_bounds(cfg.batch_size))),
        )
        ev.extra["overridden"] = dict(fam.overridden)
        if low:
            ev.extra["low_precision"] = low_precision_facts(loaded.model, low)
        spread = random_spread(ev, prober, passes, main_batches, inf, limit, progress)
        if spread:
            ev.extra["uncertainty"] = spread
        from losscheck.measurements import Measurements, frozen_mapping
        from losscheck.rules import judge_areas
        from losscheck.semantics import semantic_findings

        lossfn = measure_data(lossfn_static, lossfn_obs, loaded, data, cfg.batch_size, cfg.seed, inf)
        m = Measurements("compare", rtol=cfg.rtol, figures=frozen_mapping(figures), lossfn=lossfn)
        ctx = SimpleNamespace(inference=inf, config=cfg, sections=lossfn_sections(lossfn))
        findings: list[Finding] = attribute(ev)
        findings += legacy_findings(loaded)
        findings += judge_areas(m, ("lossfn",))
        findings += semantic_findings(ctx)
        extra_sections: dict[str, Any] = {}
        extra_notes: list[str] = []
        measured_validation = measured_history = None
        if val is not None and inf_val is not None:
            from losscheck.validation import validation_measurements, validation_section

            measured_validation = validation_measurements(figures, ev, fam, data, val, split_at, cfg, inf, inf_val,
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
        report.sections["decomposition"] = finite_rows(ev.decomposition)
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
        if ev.families.get("frozen_batchnorm"):
            notes.append(frozen_batchnorm_note(ev.families["frozen_batchnorm"], loaded.info.legacy))
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


def finite_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The decomposition rows for the report, without any top-level gap (and its rows below) that holds a
    non-finite value: the non-finite finding says where NaN/Inf came from."""
    groups: list[list[dict[str, Any]]] = []
    for row in rows:
        if row["depth"] == 0:
            groups.append([])
        if groups:
            groups[-1].append(row)
    return [row for group in groups if all(math.isfinite(r["value"]) for r in group) for row in group]


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
