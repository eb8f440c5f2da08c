"""Report assembly: a command's header, what it measured (`Measurements`) and the judged findings, put
together as its `Report`: figures with their descriptions, sections in report order (built from the
measurement records, report/measured.py), the notes that concern the command. No TensorFlow here."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from losscheck.decomposition import finite_rows
from losscheck.findings import Figure, Finding, Report
from losscheck.measurements import Measurements
from losscheck.notes import FIT, without
from losscheck.report.measured import breakdown_sections, inspect_sections, measured_notes, measured_sections
from losscheck.taxonomy import FAMILIES, family_figure

#: figure name -> what it is, for compare (and the callback's figures it shares)
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
    "evaluate_distributed": "model.evaluate(...) under --distribute (each batch split across the replicas)",
    "fit_epoch_one_device": "with --distribute: fit_epoch of a copy of the model on one device",
    "evaluate_jit": "model.evaluate(...) with jit_compile=True (XLA), --parity jit",
    "evaluate_nojit": "model.evaluate(...) with jit_compile=False, --parity jit",
    "evaluate_tensorflow": "model.evaluate(...) on the TensorFlow backend (a subprocess), --parity backends",
    "evaluate_jax": "model.evaluate(...) on the JAX backend (a subprocess), --parity backends",
    "evaluate_torch": "model.evaluate(...) on the torch backend (a subprocess), --parity backends",
}

#: the callback's own figures (its other figures are described as in compare)
CALLBACK_DESCRIPTIONS = {
    "fit_logged": "the loss fit logged for this epoch (logs['loss']): the mean of the losses measured before "
                  "each update of the epoch",
    "val_loss_logged": "the validation loss fit logged for this epoch (logs['val_loss']), on the validation data",
}

#: breakdown's figures (its manual is the data loss its rows add up to)
BREAKDOWN_DESCRIPTIONS = {
    "evaluate": "what model.evaluate(...) reports (total loss)",
    "manual": "losscheck's numpy data loss (Keras's semantics, penalties excluded)",
    "regularization": "penalties (model.losses) included in evaluate",
}

#: Figures measured on the --probe-samples subset only.
SUBSET_FIGURES = ("train_mode_class_weighted", "train_mode", *(family_figure(f) for f in FAMILIES),
                  "evaluate_probe_subset")


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
        report.figures[key] = Figure(float(value), described, extra)
    report.findings = list(findings)
    return report


def own_figure_description(name: str) -> str:
    """What a figure named after the model's own log key is: evaluate_<key> or fit_epoch_<key>."""
    for prefix, what in (("fit_epoch_", "model.fit(..., epochs=1, shuffle=False) logs"),
                         ("evaluate_val_", "model.evaluate(...) on the validation data logs"),
                         ("evaluate_", "model.evaluate(...) logs")):
        if name.startswith(prefix):
            return f"what {what} as {name[len(prefix):]} (a loss the model's own step logs)"
    return name


def compare_report(header: dict[str, Any], m: Measurements, findings: Iterable[Finding]) -> Report:
    """compare's report: figures, findings, the decomposition, the measured sections, the notes."""
    report = _report("compare", header, m, findings, DESCRIPTIONS)
    assert m.gaps is not None and m.model is not None
    report.sections["decomposition"] = finite_rows(m.gaps.decomposition)
    report.sections.update(measured_sections(m))
    notes = without(m.notes)
    if m.gaps.families.get("frozen_batchnorm"):
        notes.append(frozen_batchnorm_note(list(m.gaps.families["frozen_batchnorm"]), m.model.legacy))
    report.sections["notes"] = notes + measured_notes(m)
    return report


def breakdown_report(header: dict[str, Any], m: Measurements, findings: Iterable[Finding]) -> Report:
    """breakdown's report: evaluate, manual, regularization, the mode's sections, notes if any (not
    those on the fit probe: breakdown never fits)."""
    report = _report("breakdown", header, m, findings, BREAKDOWN_DESCRIPTIONS)
    assert m.breakdown is not None
    report.sections.update(breakdown_sections(m.breakdown, m.metric_rows))
    notes = without(m.notes, FIT)
    if notes:
        report.sections["notes"] = notes
    return report


def inspect_report(header: dict[str, Any], m: Measurements, findings: Iterable[Finding]) -> Report:
    """inspect's report: no figures; the static sections and notes."""
    report = _report("inspect", header, m, findings, {})
    report.sections.update(inspect_sections(m))
    report.sections["notes"] = without(m.notes)
    return report


def callback_report(header: dict[str, Any], m: Measurements, findings: Iterable[Finding], epoch: int,
                    logs: Mapping[str, float]) -> Report:
    """The callback's report after `epoch` (Keras's index): figures, findings, the decomposition, the
    epoch, fit's numeric logs, the notes (not those on the fit probe: the callback is the fit)."""
    report = _report("callback", header, m, findings, {**DESCRIPTIONS, **CALLBACK_DESCRIPTIONS})
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
