"""Report.exit_code(gate) as a pure function of findings, figures and the Gate (--fail-on, --max-gap;
a table, as flake8 tests its exit code), and Gate.kept for --select/--ignore."""

from __future__ import annotations

import pytest

from losscheck.core.codes import Severity
from losscheck.core.finding import Finding
from losscheck.core.gate import Gate
from losscheck.core.significance import relative_gap
from losscheck.report.model import Figure, Report

INFO, WARNING, ERROR = Finding("dropout", "i"), Finding("partial-batch", "w"), Finding("unexplained", "e")


@pytest.mark.parametrize("findings, fail_on, code", [
    ([], "info", 0),
    ([INFO], "info", 1), ([INFO], "warning", 0), ([INFO], "error", 0), ([INFO], "never", 0),
    ([WARNING], "info", 1), ([WARNING], "warning", 1), ([WARNING], "error", 0), ([WARNING], "never", 0),
    ([ERROR], "info", 1), ([ERROR], "warning", 1), ([ERROR], "error", 1), ([ERROR], "never", 0),
    ([INFO, WARNING], "error", 0), ([INFO, WARNING, ERROR], "error", 1),
    ([Finding("dropout", "raised", severity=Severity.ERROR)], "error", 1),  # a severity set by a rule
])
def test_exit_code_table(findings, fail_on, code):
    report = Report("compare", {}, findings=list(findings))
    assert report.exit_code(Gate(fail_on=fail_on)) == code
    assert report.exit_code() == report.exit_code(Gate())  # a report's own gate is the default one
    gated = Gate(fail_on=fail_on).apply(report)
    assert gated.exit_code == code and gated.exit_code() == code and gated.findings == report.findings


def _gap_report(max_gap, fit=1.1, train=None, evaluate=1.0) -> Report:
    figures = {"fit_epoch": Figure(fit, ""), "evaluate": Figure(evaluate, "")}
    if train is not None:
        figures["train_mode"] = Figure(train, "")
    return Report("compare", {}, figures=figures, gate=Gate(fail_on="never", max_gap=max_gap))


@pytest.mark.parametrize("max_gap, fit, train, breaches", [
    (None, 5.0, 5.0, []),                         # no --max-gap: never
    (0.2, 1.1, None, []),                         # 10% within 20%
    (0.05, 1.1, None, ["fit_epoch"]),             # 10% above 5%
    (0.05, 0.9, None, ["fit_epoch"]),             # either direction
    (0.05, 1.01, 1.2, ["train_mode"]),            # train_mode alone
    (0.05, 1.2, 1.2, ["fit_epoch", "train_mode"]),
    (0.0, 1.0, 1.0, []),                          # equal figures pass even at 0
    (0.1, float("nan"), None, ["fit_epoch"]),     # a NaN figure cannot be within any bound
])
def test_max_gap(max_gap, fit, train, breaches):
    report = _gap_report(max_gap, fit, train)
    assert [name for name, _ in report.gap_breaches()] == breaches
    assert report.exit_code() == (1 if breaches else 0)


def test_max_gap_needs_an_evaluate_figure():
    report = Report("inspect", {}, gate=Gate(max_gap=0.0))
    assert report.gap_breaches() == [] and report.exit_code() == 0
    assert Report("inspect", {}).exit_code(Gate(max_gap=0.0)) == 0


def test_relative_gap_is_relative_to_evaluate():
    assert relative_gap(1.1, 1.0) == pytest.approx(0.1)
    assert relative_gap(0.0, 0.0) == 0.0


@pytest.mark.parametrize("select, ignore, kept", [
    ((), (), ["dropout", "partial-batch", "unexplained"]),
    (("dropout",), (), ["dropout"]),
    ((), ("dropout", "unexplained"), ["partial-batch"]),
    (("dropout", "unexplained"), ("unexplained",), ["dropout"]),
    (("mask",), (), []),
])
def test_select_and_ignore(select, ignore, kept):
    gate = Gate(select=frozenset(select), ignore=frozenset(ignore), fail_on="info")
    out = gate.kept([INFO, WARNING, ERROR])
    assert [f.code for f in out] == kept
    report = Report("compare", {}, findings=[INFO, WARNING, ERROR])
    gated = gate.apply(report)
    assert [f.code for f in gated.findings] == kept and len(report.findings) == 3  # a copy; the report unchanged
    assert report.exit_code(gate) == gated.exit_code == (1 if kept else 0)


def test_a_gate_is_frozen_and_checks_fail_on():
    import dataclasses

    with pytest.raises(dataclasses.FrozenInstanceError):
        Gate().fail_on = "never"  # type: ignore[misc]
    with pytest.raises(ValueError, match="fail_on"):
        Gate(fail_on="sometimes")
