"""The headline (report/headline.py) on hand-built reports: no TensorFlow."""

from __future__ import annotations

from losscheck.core.finding import Finding
from losscheck.decomposition import decompose, finite_rows
from losscheck.report.model import Figure, Report


def _report(figures: dict[str, float], fit: str = "fit_epoch", findings=()) -> Report:
    r = Report("compare", {})
    r.figures = {k: Figure(v, k) for k, v in figures.items()}
    r.sections["decomposition"] = finite_rows(decompose(figures, fit, ("fit_epoch",) if fit != "fit_epoch" else ()))
    r.findings = list(findings)
    return r


def test_the_logged_loss_and_its_causes_largest_first():
    fig = {"fit_logged": 0.781, "fit_epoch": 0.7, "train_mode": 0.76, "train_mode_dropout_only": 0.793,
           "train_mode_batchnorm_only": 0.603, "evaluate": 0.633, "manual": 0.633, "regularization": 0.0}
    text = _report(fig, "fit_logged").summary
    assert text == ("Fit logged 0.781 and evaluate gives 0.633: Dropout +0.16, BatchNorm batch statistics -0.03, "
                    "the weight change during the epoch +0.021, the layers' interaction -0.003; the numpy "
                    "recomputation (manual) agrees.")


def test_agreement_penalties_errors_and_no_evaluate():
    fig = {"fit_epoch": 0.5, "train_mode": 0.5, "evaluate": 0.5, "manual": 0.4, "regularization": 0.1}
    text = _report(fig, findings=[Finding("loss-rank", "m", magnitude=1.0)]).summary
    assert text == ("Fit reports 0.5 (one epoch from the saved weights) and evaluate gives 0.5: they agree; manual "
                    "(numpy) is evaluate without the penalties (+0.1); fix first: loss-rank.")
    r = Report("compare", {})
    r.figures = {"fit_epoch_total_loss": Figure(11.2, "")}
    assert r.summary.startswith("The model's own steps log fit_epoch_total_loss 11.2; Keras's evaluate gives no loss")
    assert Report("inspect", {}).summary == ""
