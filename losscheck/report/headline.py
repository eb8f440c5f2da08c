"""The headline: one sentence that answers "why do my loss numbers differ" in the report's own numbers.

    <fit's figure> and evaluate gives <evaluate>: <cause> <signed size>, ... [; manual ...][; fix first: ...].

fit's figure is the first `<fit> - evaluate` gap of the decomposition (fit_logged: the logged loss of
the epoch; fit_epoch: losscheck's one-epoch re-run); its causes are the rows under it, with the
training-mode layers replaced by their families and interaction, largest |size| first (at most
MAX_CAUSES, none below SHOWN of the largest or of |evaluate|). Without a fit figure the sentence is
about evaluate and manual. Error findings are named at the end. Pure text from the Report.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from losscheck.core.codes import Severity
from losscheck.core.formatting import sig

if TYPE_CHECKING:
    from losscheck.report.model import Report

MAX_CAUSES = 4
SHOWN = 1e-2  # a cause is named when at least this fraction of the largest one
AGREE = 1e-4  # relative to |evaluate|: below it two figures agree

#: decomposition row name -> how the headline names the cause (fit_logged's weight row differs)
CAUSE_WORDS = {
    "dropout": "Dropout", "batchnorm": "BatchNorm batch statistics", "noise": "noise/augmentation layers",
    "custom": "custom training-mode layers", "interaction": "the layers' interaction",
    "training-mode layers": "training-mode layers", "class weight": "class weights",
}
FIT_WORDS = {"fit_logged": ("fit logged", "the weight change during the epoch"),
             "fit_epoch": ("fit reports", "the weight update during its epoch")}


def _n(value: float, signed: bool = False) -> str:
    return sig(value, 3, signed=signed)


def _causes(rows: list[dict[str, Any]], top: dict[str, Any], fit: str, scale: float) -> list[tuple[str, float]]:
    """(words, value) of the causes under `top`, the training-mode layers split into their families."""
    out: list[tuple[str, float]] = []
    for row in rows:
        if row.get("parent") != top["name"]:
            continue
        below = [r for r in rows if r.get("parent") == row["name"]]
        if row["name"] == "training-mode layers" and below:
            out += [(CAUSE_WORDS.get(r["name"], "other training-mode layers"), r["value"]) for r in below]
        elif row["name"] == "weight update":
            out.append((FIT_WORDS.get(fit, FIT_WORDS["fit_epoch"])[1], row["value"]))
        else:
            out.append((CAUSE_WORDS.get(row["name"], row["name"]), row["value"]))
    largest = max((abs(v) for _, v in out), default=0.0)
    kept = [(w, v) for w, v in out if abs(v) > AGREE * scale and abs(v) >= SHOWN * largest]
    return sorted(kept, key=lambda wv: -abs(wv[1]))[:MAX_CAUSES]


def _fit_clause(report: Report, rows: list[dict[str, Any]], scale: float) -> str | None:
    top = next((r for r in rows if r.get("depth") == 0 and str(r.get("name", "")).endswith(" - evaluate")
                and r.get("between") and r["between"][0] in FIT_WORDS), None)
    if top is None:  # no decomposition (a custom step): the two figures and their gap
        fit = next((f for f in FIT_WORDS if f in report.figures), None)
        if fit is None:
            return None
        top = {"name": f"{fit} - evaluate", "value": report.figures[fit].value - report.figures["evaluate"].value}
    else:
        fit = top["between"][0]
    says = FIT_WORDS[fit][0]
    value, evaluate = report.figures[fit].value, report.figures["evaluate"].value
    head = f"{says} {_n(value)} and evaluate gives {_n(evaluate)}"
    if fit == "fit_epoch":
        head = f"{says} {_n(value)} (one epoch from the saved weights) and evaluate gives {_n(evaluate)}"
    if abs(top["value"]) <= AGREE * scale:
        return head + ": they agree"
    causes = _causes(rows, top, fit, scale)
    if not causes:
        own = any(f.code == "custom-step" for f in report.findings) and "between" not in top
        return head + f" ({_n(top['value'], True)}" + ("; the model's own steps: not split into causes)" if own
                                                        else ")")
    return head + ": " + ", ".join(f"{w} {_n(v, True)}" for w, v in causes)


def _manual_clause(report: Report, scale: float) -> str | None:
    if "manual" not in report.figures or "evaluate" not in report.figures:
        return None
    gap = report.figures["evaluate"].value - report.figures["manual"].value
    reg = report.figures["regularization"].value if "regularization" in report.figures else 0.0
    if abs(gap - reg) <= AGREE * scale:
        return ("the numpy recomputation (manual) agrees" if abs(reg) <= AGREE * scale
                else f"manual (numpy) is evaluate without the penalties ({_n(reg, True)})")
    return f"manual (numpy) differs from evaluate by {_n(-gap, True)}"


def headline(report: Report) -> str:
    """The report's one-sentence answer (see the module docstring); without evaluate, fit's figure
    alone ('' without either)."""
    if "evaluate" not in report.figures:
        fit = next((f for f in FIT_WORDS if f in report.figures), None)
        if fit is not None:
            said = f"{FIT_WORDS[fit][0].capitalize()} {_n(report.figures[fit].value)}"
        elif report.figures:
            said = "The model's own steps log " + ", ".join(f"{k} {_n(f.value)}" for k, f in report.figures.items())
        else:
            return ""
        return said + "; Keras's evaluate gives no loss for this model, so there is no gap to explain."
    evaluate = report.figures["evaluate"].value
    scale = max(abs(evaluate), 1e-12)
    rows = list(report.sections.get("decomposition") or [])
    clauses = [c for c in (_fit_clause(report, rows, scale), _manual_clause(report, scale)) if c]
    if not clauses or clauses[0].startswith(("the numpy", "manual")):
        clauses.insert(0, f"evaluate gives {_n(evaluate)}")
    errors = [f.code for f in report.findings if f.severity == Severity.ERROR]
    if errors:
        clauses.append("fix first: " + ", ".join(dict.fromkeys(errors)))
    text = "; ".join(clauses)
    return text[0].upper() + text[1:] + "."
