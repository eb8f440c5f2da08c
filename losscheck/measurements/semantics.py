"""Measurements of the semantics area: the chain from a natural numpy loss to Keras's (masks, logits
shortcut, clipping, precision), measured in the inference pass (losscheck.reference.variants)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any


@dataclass(frozen=True)
class OutputChainFacts:
    """What the inference pass saw for one output.

    masked: a Keras mask or the loss's own mask was present; masked_fraction: (masked, total) loss
    elements; logits_used: Keras computed a from_logits=False crossentropy from the cached logits;
    clipped: Keras computed a crossentropy from probabilities; clip_active: probabilities outside
    [eps, 1 - eps]; low_precision: the float16/bfloat16 output dtype, or None."""

    masked: bool = False
    masked_fraction: tuple[float, float] = (0.0, 0.0)
    logits_used: bool = False
    clipped: bool = False
    clip_active: int = 0
    low_precision: str | None = None


@dataclass(frozen=True)
class SemanticMeasurements:
    """The chain's figures, variant -> value (keras, no_weights, no_masks, probabilities, unclipped,
    float64_outputs; None where a variant could not be computed), and the facts per output (outputs
    with a loss, in output order)."""

    figures: Mapping[str, float | None] = field(default_factory=lambda: MappingProxyType({}))
    facts: Mapping[str, OutputChainFacts] = field(default_factory=lambda: MappingProxyType({}))

    @staticmethod
    def of(summary: Mapping[str, Any]) -> SemanticMeasurements:
        """From SemanticStats.summary() ({"figures": ..., "facts": output -> OutputFacts})."""
        facts = {o: OutputChainFacts(bool(f.masked), (float(f.masked_fraction[0]), float(f.masked_fraction[1])),
                                     bool(f.logits_used), bool(f.clipped), int(f.clip_active), f.low_precision)
                 for o, f in summary["facts"].items()}
        figures = {k: (None if v is None else float(v)) for k, v in summary["figures"].items()}
        return SemanticMeasurements(MappingProxyType(figures), MappingProxyType(facts))

    def finite(self) -> dict[str, float]:
        """The chain's figures that are finite numbers."""
        return {k: v for k, v in self.figures.items() if v is not None and math.isfinite(v)}

    def section(self) -> dict[str, float | None]:
        """The report's "natural_numpy" section: every variant, None where not finite."""
        finite = self.finite()
        return {k: finite.get(k) for k in self.figures}
