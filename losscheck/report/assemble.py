"""Report assembly: a command's header, what it measured (`Measurements`) and the judged findings, put
together as its `Report`: figures with their descriptions, sections in report order (built from the
measurement records, report/measured.py), the notes that concern the command. No TensorFlow here."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from losscheck.core.figures import FIGURES, SUBSET_FIGURES, figure_descriptions, own_figure_description
from losscheck.core.finding import Finding
from losscheck.decomposition import finite_rows
from losscheck.measurements import Measurements
from losscheck.notes import FIT, without
from losscheck.report.measured import breakdown_sections, inspect_sections, measured_notes, measured_sections
from losscheck.report.model import Figure, Report


def _report(command: str, header: dict[str, Any], m: Measurements, findings: Iterable[Finding],
            descriptions: Mapping[str, str]) -> Report:
    """A Report with the measured figures (described; the subset ones carry their sample count)."""
    report = Report(command, header)
    gaps = m.gaps
    samples = gaps.probe_samples if gaps is not None else None
    own = m.loop.own_figures if m.loop is not None else ()
    for key, value in m.figures.items():
        extra = {"samples": samples} if samples and key in SUBSET_FIGURES else {}
        described = own_figure_description(key) if key in own else descriptions.get(key, key)
        spec = FIGURES.get(key)
        report.figures[key] = Figure(float(value), described, extra, spec.brief if spec is not None else "")
    report.findings = list(findings)
    return report


def compare_report(header: dict[str, Any], m: Measurements, findings: Iterable[Finding]) -> Report:
    """compare's report: figures, findings, the decomposition, the measured sections, the notes."""
    report = _report("compare", header, m, findings, figure_descriptions("compare"))
    assert m.gaps is not None and m.model is not None
    report.sections["decomposition"] = finite_rows(m.gaps.decomposition)
    report.sections.update(measured_sections(m))
    notes = without(m.notes)
    if m.gaps.families.get("frozen_batchnorm"):
        notes.append(frozen_batchnorm_note(list(m.gaps.families["frozen_batchnorm"]), m.model.legacy))
    report.sections["notes"] = notes + measured_notes(m)
    return report


def stopped_report(header: dict[str, Any], m: Measurements, findings: Iterable[Finding]) -> Report:
    """compare's report when it stopped before any pass (uneven multi-process shards): no figures, the
    findings that stopped it, the measured sections and the notes."""
    report = _report("compare", header, m, findings, figure_descriptions("compare"))
    report.sections.update(measured_sections(m))
    report.sections["notes"] = without(m.notes)
    return report


def breakdown_report(header: dict[str, Any], m: Measurements, findings: Iterable[Finding]) -> Report:
    """breakdown's report: evaluate, manual, regularization, the mode's sections, notes if any (not
    those on the fit probe: breakdown never fits)."""
    report = _report("breakdown", header, m, findings, figure_descriptions("breakdown"))
    assert m.breakdown is not None
    report.sections.update(breakdown_sections(m.breakdown, m.metric_rows))
    notes = without(m.notes, FIT)
    if notes:
        report.sections["notes"] = notes
    return report


def inspect_report(header: dict[str, Any], m: Measurements, findings: Iterable[Finding]) -> Report:
    """inspect's report: no figures; the static sections and notes."""
    report = _report("inspect", header, m, findings, figure_descriptions("inspect"))
    report.sections.update(inspect_sections(m))
    report.sections["notes"] = without(m.notes)
    return report


def callback_report(header: dict[str, Any], m: Measurements, findings: Iterable[Finding], epoch: int,
                    logs: Mapping[str, float]) -> Report:
    """The callback's report after `epoch` (Keras's index): figures, findings, the decomposition, the
    epoch, fit's numeric logs, the notes (not those on the fit probe: the callback is the fit)."""
    report = _report("callback", header, m, findings, figure_descriptions("callback"))
    gaps = m.gaps
    assert gaps is not None
    report.sections["decomposition"] = finite_rows(gaps.decomposition)
    report.sections["epoch"] = epoch
    report.sections["logs"] = dict(logs)
    report.sections["notes"] = [
        *without(m.notes, FIT),
        f"checked at the end of epoch {epoch + 1} (Keras's epoch index {epoch}), at that epoch's final weights; "
        f"regularized layers: {', '.join(gaps.regularized_layers) or 'none'}"]
    return report


def frozen_batchnorm_note(layers: list[str], legacy: bool) -> str:
    """Why frozen BatchNormalization layers are no cause of a gap (and what tf.keras 2.x did)."""
    shown = ", ".join(layers[:6]) + (f" and {len(layers) - 6} more" if len(layers) > 6 else "")
    text = (f"BatchNormalization layers {shown} are frozen (trainable=False): Keras 3 runs them in inference "
            "mode (moving statistics, never updated) in fit as in evaluate, so they are no cause of a gap here.")
    if legacy:
        text += (" tf.keras 2.x, which saved this file, did the same for a frozen BatchNormalization; only "
                 "TF1-style (tf.compat.v1) BatchNormalization used batch statistics in fit when frozen.")
    return text
