"""The gap measurements: the training-mode figures (one compiled pass) and the facts the gap rules
read, assembled into a frozen GapMeasurements with the decomposition computed once."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from losscheck.core.taxonomy import FAMILIES, family_figure
from losscheck.decomposition import decompose
from losscheck.measurements.gaps import GapMeasurements, LowPrecisionFacts, SampleWeightSummary
from losscheck.probes.layers import regularized_layers


def low_precision_facts(model, low: list) -> LowPrecisionFacts:
    """The compute dtypes / policies of the low-precision layers `low` and which of them are output layers."""
    outputs = {getattr(getattr(t, "_keras_history", None), "operation", None) for t in (model.outputs or [])}
    policies = sorted({str(getattr(getattr(lyr, "dtype_policy", None), "name", lyr.compute_dtype)) for lyr in low})
    out_layers = [lyr.name for lyr in low if lyr in outputs]
    return LowPrecisionFacts(tuple(policies), tuple(lyr.name for lyr in low), tuple(out_layers))


def training_mode_variants(prober, limit: int | None) -> list[str | None]:
    """The variants training_mode_figures measures: every layer in training mode, each family present
    alone and, on a --probe-samples subset, none (the subset's evaluate)."""
    return [None] + [f for f in FAMILIES if getattr(prober.families, f)] + (["inference"] if limit else [])


def training_mode_figures(prober, class_weight: dict | None, limit: int | None) -> tuple[dict[str, float], dict]:
    """train_mode, train_mode_<family>_only for each family (taxonomy.FAMILIES) the model has,
    train_mode_class_weighted under class weights and, on a --probe-samples subset,
    evaluate_probe_subset: all from one compiled pass (the variants share their common layers; the
    subset's evaluate shares the inference trunk). Also returns the pass means by variant."""
    present = [f for f in FAMILIES if getattr(prober.families, f)]
    passes, weighted = prober.training_passes_weighted(training_mode_variants(prober, limit), class_weight, limit)
    figures: dict[str, float] = {}
    if class_weight:
        figures["train_mode_class_weighted"] = weighted[None]
    figures["train_mode"] = passes[None]
    for family in present:
        figures[family_figure(family)] = passes[family]
    if limit is not None:
        figures["evaluate_probe_subset"] = passes["inference"]
    return figures, passes


def gap_measurements(figures: Mapping[str, float], prober, *, class_weight: dict | None,
                     sample_weight: SampleWeightSummary | None, probe_samples: int | None, fit_steps: int,
                     fit_figure: str = "fit_epoch", low_precision: LowPrecisionFacts | None = None,
                     uncertainty: Mapping[str, float] | None = None, overridden: bool = True) -> GapMeasurements:
    """The frozen gap record for `figures`: the layer names by family (LayerFamilies.named), the
    regularized layers, the facts given, and the decomposition of `figures` with `fit_figure` as fit's
    figure (and a tree for fit_epoch beside another fit figure). `overridden`: whether to record the
    layers whose nested model's training=False fit overrides."""
    fam = prober.families
    return GapMeasurements(
        families=MappingProxyType({k: tuple(v) for k, v in fam.named().items()}),
        regularized_layers=tuple(regularized_layers(prober.model)),
        class_weight=MappingProxyType(dict(class_weight)) if class_weight else None,
        sample_weight=sample_weight,
        probe_samples=probe_samples,
        fit_steps=fit_steps,
        fit_figure=fit_figure,
        overridden=MappingProxyType(dict(fam.overridden) if overridden else {}),
        low_precision=low_precision,
        uncertainty=MappingProxyType(dict(uncertainty or {})),
        decomposition=decompose(figures, fit_figure, ("fit_epoch",) if fit_figure != "fit_epoch" else ()),
    )
