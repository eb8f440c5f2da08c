"""What the probes measured, as one frozen value that the rules read (no TensorFlow here).

`Measurements` holds the figures every command shows plus one record per area; an area is None when
the command did not measure it (inspect has no data, breakdown runs no fit, ...). Each area's record
type lives in its own module of this package, so that adding a measurement touches one file. The
report (losscheck/report/assemble.py) builds every section from these records.
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
from losscheck.measurements.inspect import InspectMeasurements
from losscheck.measurements.lossfn import LossFnMeasurements
from losscheck.measurements.metrics import MetricMeasurements
from losscheck.measurements.model import LoopMeasurements, ModelFacts
from losscheck.measurements.parity import ParityMeasurements
from losscheck.measurements.semantics import SemanticMeasurements
from losscheck.measurements.training import TrainingNonFinite
from losscheck.measurements.validation import ValidationMeasurements

__all__ = [
    "BreakdownMeasurements",
    "DataMeasurements",
    "GapMeasurements",
    "HistoryMeasurements",
    "InspectMeasurements",
    "LoopMeasurements",
    "LossFnMeasurements",
    "Measurements",
    "MetricMeasurements",
    "ModelFacts",
    "ParityMeasurements",
    "SemanticMeasurements",
    "TrainingNonFinite",
    "ValidationMeasurements",
    "frozen",
    "frozen_mapping",
    "thawed",
]


def frozen_mapping(d: Mapping[str, Any] | None = None) -> Mapping[str, Any]:
    """A read-only view of a copy of `d` (for mapping fields of frozen records)."""
    return MappingProxyType(dict(d or {}))


def frozen(value: Any) -> Any:
    """A read-only deep copy of plain data: mappings as read-only views, lists and tuples as tuples."""
    if isinstance(value, Mapping):
        return MappingProxyType({k: frozen(v) for k, v in value.items()})
    if isinstance(value, (list, tuple)):
        return tuple(frozen(v) for v in value)
    return value


def thawed(value: Any) -> Any:
    """Plain data again from `frozen(...)`: mappings as dicts, tuples as lists (what a report section holds)."""
    if isinstance(value, Mapping):
        return {k: thawed(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [thawed(v) for v in value]
    return value


@dataclass(frozen=True)
class Measurements:
    """Everything one command measured.

    command: "compare" | "breakdown" | "inspect" | "callback".
    rtol: the significance threshold: a difference d is significant when |d| > rtol * |evaluate|
      (see losscheck.core.significance).
    figures: figure name -> value (the report's figures, e.g. evaluate, manual, fit_epoch).
    notes: what loading and measuring noted, in order (losscheck.notes: each with its topic; the report
      shows those that concern the command).
    metric_rows: the compiled metrics' values (name -> {evaluate, manual, output, metric, weighted,
      [reason]}, in Keras's order) for the report's `metrics` section; None: no such section.
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
    training: TrainingNonFinite | None = None
    inspect: InspectMeasurements | None = None
    notes: tuple[str, ...] = ()
    metric_rows: Mapping[str, Mapping[str, Any]] | None = None
