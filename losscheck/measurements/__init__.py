"""What the probes measured, as one frozen value that the rules read (no TensorFlow here).

`Measurements` holds the figures every command shows plus one record per area; an area is None when
the command did not measure it (inspect has no data, breakdown runs no fit, ...). Each area's record
type lives in its own module of this package, so that adding a measurement touches one file.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from losscheck.measurements.breakdown import BreakdownMeasurements
from losscheck.measurements.data import DataMeasurements
from losscheck.measurements.gaps import GapMeasurements
from losscheck.measurements.history import HistoryMeasurements
from losscheck.measurements.lossfn import LossFnMeasurements
from losscheck.measurements.metrics import MetricMeasurements
from losscheck.measurements.model import LoopMeasurements, ModelFacts
from losscheck.measurements.parity import ParityMeasurements
from losscheck.measurements.semantics import SemanticMeasurements
from losscheck.measurements.validation import ValidationMeasurements

__all__ = [
    "BreakdownMeasurements",
    "DataMeasurements",
    "GapMeasurements",
    "HistoryMeasurements",
    "LoopMeasurements",
    "LossFnMeasurements",
    "Measured",
    "Measurements",
    "MetricMeasurements",
    "ModelFacts",
    "ParityMeasurements",
    "SemanticMeasurements",
    "ValidationMeasurements",
    "frozen_mapping",
]


def frozen_mapping(d: Mapping[str, Any] | None = None) -> Mapping[str, Any]:
    """A read-only view of a copy of `d` (for mapping fields of frozen records)."""
    return MappingProxyType(dict(d or {}))


@dataclass(frozen=True)
class Measurements:
    """Everything one command measured.

    command: "compare" | "breakdown" | "inspect" | "callback".
    rtol: the significance threshold: a difference d is significant when |d| > rtol * |evaluate|
      (see losscheck.core.significance).
    figures: figure name -> value (the report's figures, e.g. evaluate, manual, fit_epoch).
    The area records are None where the command did not measure that area."""

    command: str
    rtol: float = 1e-4
    figures: Mapping[str, float] = field(default_factory=frozen_mapping)
    model: ModelFacts | None = None
    gaps: GapMeasurements | None = None
    lossfn: LossFnMeasurements | None = None
    semantics: SemanticMeasurements | None = None
    metrics: MetricMeasurements | None = None
    validation: ValidationMeasurements | None = None
    history: HistoryMeasurements | None = None
    data: DataMeasurements | None = None
    breakdown: BreakdownMeasurements | None = None
    parity: ParityMeasurements | None = None
    loop: LoopMeasurements | None = None


@dataclass(frozen=True)
class Measured:
    """One command's measuring step: the frozen `Measurements` the rules judge, and what its report
    shows beside figures and findings.

    sections: report section name -> plain data, in report order (those measured with the passes).
    notes: what loading and measuring noted (e.g. a part that could not be measured).
    section_notes: the notes that come with the sections (validation, history), shown after the report's
      own notes."""

    m: Measurements
    sections: Mapping[str, Any] = field(default_factory=frozen_mapping)
    notes: tuple[str, ...] = ()
    section_notes: tuple[str, ...] = ()
