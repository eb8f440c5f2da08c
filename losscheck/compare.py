"""`losscheck compare`: load -> probe -> reference -> attribute -> Report. No printing here."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from losscheck import __version__
from losscheck.attribution import Evidence, attribute
from losscheck.config import Config
from losscheck.findings import Figure, Finding, Report, filter_findings
from losscheck.reference import EpochMean, output_batch_loss, prefix_mean

Progress = Callable[[str], None]

DESCRIPTIONS = {
    "fit_epoch": "what model.fit(..., epochs=1, shuffle=False) reports from the saved weights and optimizer "
                 "state (every variable is restored afterwards; the file is never written)",
    "train_mode": "every layer in training behaviour, saved weights, no update (what a fit step measures first)",
    "train_mode_dropout_only": "only Dropout-family layers in training behaviour",
    "train_mode_batchnorm_only": "only BatchNormalization in training behaviour (batch statistics)",
    "train_mode_noise_only": "only noise/augmentation layers in training behaviour",
    "evaluate_class_weighted": "evaluate with --class-weight applied as fit applies it",
    "evaluate": "what model.evaluate(...) reports (total loss)",
    "manual": "losscheck's numpy recomputation of the data loss from inference outputs (no penalties)",
    "regularization": "penalties (model.losses) included in evaluate",
}


def input_names(model) -> list[str]:
    inputs = getattr(model, "inputs", None) or []
    names = [getattr(t, "name", None) or f"input_{i}" for i, t in enumerate(inputs)]
    return names or ["x"]


def regularized_layers(model) -> list[str]:
    """Trainable layers with a weight or activity regularizer (Keras 3 drops frozen layers' penalties)."""
    from losscheck.probes import all_layers

    out = []
    for layer in all_layers(model):
        regs = [getattr(layer, a, None) for a in
                ("kernel_regularizer", "bias_regularizer", "activity_regularizer", "depthwise_regularizer",
                 "pointwise_regularizer", "recurrent_regularizer", "beta_regularizer", "gamma_regularizer",
                 "embeddings_regularizer")]
        if any(r is not None for r in regs) and (layer.trainable or getattr(layer, "activity_regularizer", None)):
            out.append(layer.name)
    return out


class SampleWeightStats:
    """Observer: the data loss with, without, and normalized by the sample weights."""

    def __init__(self, prober) -> None:
        self.prober = prober
        self.weighted, self.unweighted, self.normalized = EpochMean(), EpochMean(), EpochMean()

    def __call__(self, b) -> None:
        if b.sample_weight is None:
            return
        p = self.prober
        unweighted = 0.0
        for i, o in enumerate(p.outputs):
            spec = p.specs.get(o)
            if spec is None or o not in b.output_losses:
                continue
            unweighted += p.loaded.loss_weights[o] * output_batch_loss(
                spec, b.y[i], b.outputs[i], mask=b.masks[i], logits=b.logits[i], values=b.values[i])
        # Keras divides sum(w*l) by the element count; normalizing by the weights instead means
        # scaling by (number of weight entries) / sum(w): exact for (B,), (B,1) and (B,T) weights.
        w = np.asarray(b.sample_weight, np.float64)
        wsum = float(np.sum(w))
        self.weighted.add(b.data_loss, b.n)
        self.unweighted.add(unweighted, b.n)
        self.normalized.add(b.data_loss * w.size / wsum if wsum else 0.0, b.n)

    def summary(self) -> dict[str, float] | None:
        if not self.weighted.count:
            return None
        return {"weighted": self.weighted.value, "unweighted": self.unweighted.value,
                "normalized": self.normalized.value}


def _probe_limit(cfg: Config, n: int) -> int | None:
    """--probe-samples rounded up to whole batches (so the subset evaluate is exact), None for all."""
    if cfg.probe_samples is None:
        return None
    limit = math.ceil(cfg.probe_samples / cfg.batch_size) * cfg.batch_size
    return None if limit >= n else limit


def build_header(cfg: Config, loaded, data=None) -> dict[str, Any]:
    from losscheck._tf import keras

    header: dict[str, Any] = {
        "losscheck_version": __version__,
        "keras_version": keras.__version__,
        "backend": keras.backend.backend(),
        "model": {
            "path": str(cfg.model_path),
            "format": loaded.info.format,
            "saved_by": loaded.info.saved_by,
            "outputs": list(loaded.output_names),
            "losses": loaded.loss_labels(),
            "loss_weights": {o: w for o, w in loaded.loss_weights.items() if loaded.losses.get(o) is not None},
        },
    }
    if data is not None:
        header["data"] = {"path": str(cfg.data_path), "samples": data.n, "batch_size": cfg.batch_size}
    return header


def load_inputs(cfg: Config, progress: Progress):
    """Model (compiled) and data, validated against each other."""
    from losscheck._tf import keras
    from losscheck.loading.data import load_data
    from losscheck.loading.model import load_model

    keras.utils.set_random_seed(cfg.seed)
    progress(f"loading {cfg.model_path}")
    loaded = load_model(cfg.model_path, custom_objects_file=cfg.custom_objects, loss=cfg.loss, unsafe=cfg.unsafe)
    data = None
    if cfg.data_path is not None:
        progress(f"reading {cfg.data_path}")
        data = load_data(cfg.data_path, input_names(loaded.model), loaded.output_names, model=loaded)
    return loaded, data


def run_compare(cfg: Config, progress: Progress = lambda _msg: None) -> Report:
    from losscheck.probes import Prober, fit_epoch_restoring

    loaded, data = load_inputs(cfg, progress)
    assert data is not None
    try:
        prober = Prober(loaded, data, cfg.batch_size, cfg.seed)
        fam = prober.families
        figures: dict[str, float] = {}
        sw_stats = SampleWeightStats(prober)
        from losscheck.checks import inference_observers
        from losscheck.metrics.observe import MetricsObserver
        from losscheck.metrics.targets import TargetsObserver

        metrics_obs, targets_obs = MetricsObserver(loaded), TargetsObserver(loaded)
        progress("inference pass (evaluate + numpy reference)")
        inf = prober.inference_pass([sw_stats, *inference_observers(loaded), metrics_obs, targets_obs],
                                    metrics=True)
        if inf.metrics_error:
            loaded.notes.append(inf.metrics_error + "; they are left out")
            loaded.model._compile_metrics = None  # as compiled without them, so that fit runs
        figures["evaluate"] = inf.evaluate
        if inf.manual is not None:
            figures["manual"] = inf.manual
        figures["regularization"] = inf.regularization
        cw = cfg.class_weight
        if cw:
            if len([o for o in loaded.output_names if loaded.losses.get(o) is not None]) > 1:
                from losscheck.errors import UsageError

                raise UsageError("--class-weight is not supported for multi-output models (Keras raises "
                                 "ValueError for that too); use per-output sample weights")
        limit = _probe_limit(cfg, data.n)
        progress("training-mode passes")
        family_keys = (("dropout", "train_mode_dropout_only"), ("batchnorm", "train_mode_batchnorm_only"),
                       ("noise", "train_mode_noise_only"))
        # one compiled pass for all training-mode figures (the variants share their common layers); with
        # --class-weight it also gives the class-weighted inference loss, which shares the inference trunk
        variants = [None] + [f for f, _ in family_keys if getattr(fam, f)] + (["inference"] if cw else [])
        passes = prober.training_passes(variants, cw, limit)
        if cw:
            figures["evaluate_class_weighted"] = (passes["inference"] if limit is None
                                                  else prober.inference_loss(class_weight=cw))
        figures["train_mode"] = passes[None]
        for family, key in family_keys:
            if getattr(fam, family):
                figures[key] = passes[family]
        progress("one-epoch fit (on the loaded model, its state restored afterwards)")
        # same figure as a fresh copy from the file (same weights, optimizer state, layer seeds), one load less
        figures["fit_epoch"] = fit_epoch_restoring(loaded.model, data, cfg.batch_size, cw, cfg.seed)

        ev = Evidence(
            figures=figures, rtol=cfg.rtol,
            families={k: fam.names(k) for k in ("dropout", "batchnorm", "frozen_batchnorm", "noise")},
            regularized_layers=regularized_layers(loaded.model),
            class_weight=cw, sample_weight=sw_stats.summary(),
            probe_samples=limit,
            fit_steps=math.ceil(data.n / cfg.batch_size),
        )
        if limit is not None:
            ev.subset_evaluate = prefix_mean(inf.batch_totals, limit)
            if cw:
                ev.subset_evaluate_cw = passes["inference"]  # on the same first `limit` samples
        from losscheck.checks import CheckContext, data_checks, static_checks
        from losscheck.semantics import semantic_findings

        ctx = CheckContext(loaded, data, prober, inf, cfg)
        findings: list[Finding] = attribute(ev)
        findings += legacy_findings(loaded)
        findings += static_checks(loaded)
        findings += data_checks(ctx)
        findings += semantic_findings(ctx)
        from losscheck.metrics.findings import metric_findings

        findings += metric_findings(metrics_obs, inf, loaded, data, cfg.rtol)
        findings += targets_obs.findings()
        findings = filter_findings(findings, cfg.select, cfg.ignore)

        report = Report("compare", build_header(cfg, loaded, data), fail_on=cfg.fail_on, max_gap=cfg.max_gap)
        for key, value in figures.items():
            extra = {}
            if limit is not None and key.startswith("train_mode"):
                extra["samples"] = limit
            report.figures[key] = Figure(float(value), DESCRIPTIONS.get(key, key), extra)
        report.findings = findings
        report.sections["decomposition"] = decomposition(ev)
        report.sections.update(ctx.sections)
        metrics_section = metrics_obs.section(inf.metrics)
        if metrics_section:
            report.sections["metrics"] = metrics_section
        report.sections["notes"] = list(loaded.notes) + (
            [f"manual is not computed for outputs {inf.manual_unsupported}"] if inf.manual_unsupported else [])
        return report
    finally:
        data.close()


def decomposition(ev: Evidence) -> dict[str, float]:
    """The explicit split of the gaps, for the report (non-finite entries left out: the non-finite
    finding says where NaN/Inf came from)."""
    return {k: v for k, v in _decomposition(ev).items() if math.isfinite(v)}


def _decomposition(ev: Evidence) -> dict[str, float]:
    fig = ev.figures
    out: dict[str, float] = {}
    if "fit_epoch" in fig:
        out["fit_epoch - evaluate"] = fig["fit_epoch"] - fig["evaluate"]
    if "fit_epoch" in fig and "train_mode" in fig and ev.probe_samples is None:
        out["fit_epoch - train_mode (weight update)"] = fig["fit_epoch"] - fig["train_mode"]
    base = ev.base
    if base is not None and "train_mode" in fig:
        ref = "evaluate_class_weighted" if ev.class_weight else "evaluate"
        out[f"train_mode - {ref} (training-mode layers)"] = fig["train_mode"] - base
        for key, label in (("train_mode_dropout_only", "dropout"), ("train_mode_batchnorm_only", "batchnorm"),
                           ("train_mode_noise_only", "noise")):
            if key in fig:
                out[f"  {label}"] = fig[key] - base
        if "interaction" in ev.extra:
            out["  interaction (not attributable to one family)"] = ev.extra["interaction"]
    if ev.class_weight and "evaluate_class_weighted" in fig:
        out["class weight"] = fig["evaluate_class_weighted"] - fig["evaluate"]
    if "manual" in fig:
        out["evaluate - manual"] = fig["evaluate"] - fig["manual"]
        out["  regularization"] = fig.get("regularization", 0.0)
        out["  residual"] = ev.extra.get("manual_residual", fig["evaluate"] - fig["manual"] - fig.get("regularization", 0.0))
    return out


def legacy_findings(loaded) -> list[Finding]:
    if not loaded.info.legacy:
        return []
    from losscheck.loading.legacy import legacy_message

    message, advice = legacy_message(loaded)
    return [Finding("legacy-keras", message, advice=advice)]
