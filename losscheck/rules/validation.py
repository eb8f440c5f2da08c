"""Rules of the validation area (see losscheck.rules): training against validation data."""

from __future__ import annotations

from losscheck.core.finding import Finding
from losscheck.core.significance import scale_of, significant
from losscheck.measurements import Measurements
from losscheck.rules import rule


@rule("generalization-gap")
def generalization_gap(m: Measurements) -> list[Finding]:
    """evaluate - evaluate_val on the same (saved) weights, less the penalty difference: how much
    better (or worse) the model does on the validation data, with the largest per-class terms."""
    v, fig = m.validation, m.figures
    if v is None or "evaluate_val" not in fig:
        return []
    evaluate, reg_train, reg_val = fig["evaluate"], fig.get("regularization", 0.0), v.regularization
    gap = v.parts.get("generalization gap", (evaluate - reg_train) - (fig["evaluate_val"] - reg_val))
    if not significant(gap, m.rtol, scale_of(evaluate)):
        return []
    train_data = evaluate - reg_train
    val_data = fig["evaluate_val"] - reg_val
    better = "better" if gap > 0 else "worse"
    msg = (f"On the same (saved) weights the data loss is {train_data:.6g} on the training data and {val_data:.6g} "
           f"on the validation data: the model does {better} on the validation data by {abs(gap):.6g} "
           f"({'underfitting, or easier validation data' if gap > 0 else 'overfitting, or a distribution shift'}"
           ", or a different class balance).")
    classes = v.per_class_gap
    if classes:
        several = len({c["output"] for c in classes}) > 1
        top = ", ".join(f"class {r['class']}" + (f" of {r['output']}" if several else "") + f" {r['gap']:+.4g}"
                        for r in classes[:3])
        msg += f" Largest per-class contributions (training minus validation): {top}."
    split_lines = v.split.lines if v.split is not None else ()
    if split_lines:
        msg += " The validation part is the last rows of the data, not a random sample: " + "; ".join(split_lines) + "."
    # the penalties of weight regularizers are the same on both sets: the gap is then evaluate - evaluate_val
    exact = abs(reg_train - reg_val) <= 1e-12 * max(abs(evaluate), 1.0)
    if exact:
        gap = evaluate - fig["evaluate_val"]
    return [Finding("generalization-gap", msg, magnitude=gap, between=("evaluate", "evaluate_val") if exact else None,
                    advice="Judge over- or underfitting on evaluate of both sets at the same weights, not on fit's "
                           "running figure; with validation_split, shuffle the arrays once before fit if the last "
                           "rows are not representative.")]
