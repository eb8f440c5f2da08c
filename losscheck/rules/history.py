"""Rules of the history area (see losscheck.rules): a logged history that no epoch of which the
weights reproduce."""

from __future__ import annotations

import math

from losscheck.core.codes import Severity
from losscheck.core.finding import Finding
from losscheck.measurements import Measurements
from losscheck.measurements.history import HistoryMeasurements
from losscheck.rules import rule


@rule("history-mismatch")
def history_mismatch(m: Measurements) -> list[Finding]:
    """No logged epoch matched: why, from where the figure lies among the logged values (info when
    no exact match was possible, without validation data)."""
    h = m.history
    if h is None or h.matched_epoch is not None:
        return []
    info = False
    if h.on_validation:
        target = float(m.figures["evaluate_val"])
        if h.val_loss is None or all(v is None for v in h.val_loss):
            message = (f"{h.path} logs no val_loss (the run had no validation data), so no epoch can be "
                       f"matched to evaluate_val ({target:.6g}).")
        else:
            message = _val_mismatch(h, h.val_loss, target)
    else:
        evaluate = m.figures.get("evaluate", math.nan)
        near = _nearest(h.loss, evaluate)
        near_text = (f"; the nearest logged loss is epoch {h.epochs[near]}'s ({h.loss[near]:.6g}) against evaluate "
                     f"{evaluate:.6g}, which is not a match") if near is not None else ""
        message = ("Without validation data no epoch can be matched exactly: each logged loss is a running mean "
                   "over weights that change during the epoch, in training mode, not the loss of the saved "
                   f"weights{near_text}. Pass the validation data (--val or --validation-split) to match on "
                   "val_loss.")
        info = True
    return [Finding("history-mismatch", message,
                    advice="Evaluate the file's weights on the validation data fit used (same arrays, same "
                           "split) and compare with the val_loss of the epoch you saved.",
                    severity=Severity.INFO if info else None)]


def _nearest(values: tuple[float | None, ...], target: float) -> int | None:
    """Index of the logged value nearest to `target` (the last of equals; None when none is logged)."""
    best = None
    for i, v in enumerate(values):
        if v is not None and (best is None or abs(v - target) <= abs(values[best] - target)):  # type: ignore[operator]
            best = i
    return best


def _val_mismatch(h: HistoryMeasurements, val: tuple[float | None, ...], target: float) -> str:
    known = [v for v in val if v is not None]
    near = _nearest(val, target)
    assert near is not None
    nearest = float(val[near])  # type: ignore[arg-type]
    rel = abs(nearest - target) / max(abs(nearest), 1e-12)
    head = (f"evaluate_val ({target:.6g}) matches no logged val_loss; the nearest is epoch {h.epochs[near]}'s "
            f"({nearest:.6g}, {rel:.2%} off).")
    if target < min(known):
        why = ("It is lower than every logged val_loss: the weights are likely from after this history (training "
               "resumed, or a checkpoint of a later run), or this validation set is not the one fit used.")
    elif target > max(known):
        why = ("It is higher than every logged val_loss: this validation set is likely not the one fit used "
               "(validation_split takes the last fraction of the arrays as passed to fit, before shuffling), or "
               "the weights come from another run.")
    elif rel < 1e-2:
        why = ("It is close to that epoch: likely the same weights evaluated on slightly different data or with a "
               "different batch size (with a loss that depends on it, e.g. reduction='sum'), or a float16 model.")
    else:
        why = ("It lies between logged values: likely a different validation set, or weights from a checkpoint "
               "of another run.")
    return f"{head} {why}"
