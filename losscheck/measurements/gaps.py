"""Measurements of the gaps area: the figures' decomposition and the facts the gap rules read."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from losscheck.decomposition import Row


def _empty() -> Mapping:
    return MappingProxyType({})


@dataclass(frozen=True)
class SampleWeightSummary:
    """The data loss with and without the sample weights, over the inference pass.

    weighted: Keras's data loss (sum(w*l*m) / count of unmasked elements, per batch);
    unweighted: the same without weights; normalized: sum(w*l*m) / sum(w*m) per batch (what
    reduction="mean_with_sample_weight" reports); batches weighted by size in all three.
    per_element: more than one weight per sample (e.g. per pixel); masked: an output had a mask."""

    weighted: float
    unweighted: float
    normalized: float
    per_element: bool = False
    masked: bool = False


@dataclass(frozen=True)
class LowPrecisionFacts:
    """The layers computing in float16/bfloat16: their dtype policies, names, and the output layers
    among them."""

    policies: tuple[str, ...] = ()
    layers: tuple[str, ...] = ()
    output_layers: tuple[str, ...] = ()


@dataclass(frozen=True)
class GapMeasurements:
    """What the gap rules read besides the figures.

    families: family -> layer names (dropout, batchnorm, frozen_batchnorm, noise, custom; a family
      the command did not look for is absent).
    regularized_layers: trainable layers with a weight or activity regularizer.
    class_weight: --class-weight as given (class -> weight), or None.
    sample_weight: the sample-weight figures, None without sample weights.
    probe_samples: the --probe-samples subset the training-mode figures ran on, None for all samples.
    fit_steps: the number of batches (updates) of fit's epoch.
    fit_figure: the name of fit's figure: "fit_epoch" (compare) or "fit_logged" (the callback).
    overridden: layer name -> the nested model, called with training=False, that holds it.
    low_precision: the low-precision layers, None when the model computes in float32.
    uncertainty: figure name (or "interaction") -> std of that family effect over random draws.
    decomposition: the rows of losscheck.decomposition.decompose(figures, fit_figure)."""

    families: Mapping[str, tuple[str, ...]] = field(default_factory=_empty)
    regularized_layers: tuple[str, ...] = ()
    class_weight: Mapping[int, float] | None = None
    sample_weight: SampleWeightSummary | None = None
    probe_samples: int | None = None
    fit_steps: int = 0
    fit_figure: str = "fit_epoch"
    overridden: Mapping[str, str] = field(default_factory=_empty)
    low_precision: LowPrecisionFacts | None = None
    uncertainty: Mapping[str, float] = field(default_factory=_empty)
    decomposition: tuple[Row, ...] = ()

    def row(self, name: str) -> Row | None:
        """The decomposition row called `name`, or None."""
        return next((r for r in self.decomposition if r["name"] == name), None)
