"""The callback's report when the watched fit turned non-finite (LossCheck(on_nonfinite=True)): the
`nonfinite-in-training` finding and the `training_nonfinite` section, no figures (the weights are no
longer finite). No TensorFlow here."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from losscheck.core.finding import Finding
from losscheck.measurements import Measurements
from losscheck.notes import FIT, without
from losscheck.report.model import Report


def nonfinite_report(header: dict[str, Any], m: Measurements, findings: Iterable[Finding], epoch: int,
                     batch: int, logs: Mapping[str, float]) -> Report:
    """The report after batch `batch` of epoch `epoch` (Keras's indices), whose logged loss is not finite."""
    assert m.training is not None
    report = Report("callback", header, findings=list(findings))
    report.sections["epoch"] = epoch
    report.sections["logs"] = dict(logs)
    report.sections["training_nonfinite"] = m.training.section()
    report.sections["notes"] = [
        *without(m.notes, FIT),
        f"fit's logged loss turned non-finite after step {batch + 1} of epoch {epoch + 1} (Keras's batch index "
        f"{batch}); training was stopped there, as TerminateOnNaN stops it"]
    return report
