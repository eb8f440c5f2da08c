"""--history: the loss the user logged per epoch, read from a Keras `History.history` JSON, a
`CSVLogger` CSV or a TensorBoard log folder (read by loading/history.py), and the epoch whose
weights the model file holds.

Matching (`matched_epoch`):
- with validation data (`--val` / `--validation-split`): the epoch whose logged `val_loss` equals
  `evaluate_val` within the tolerance. Keras computes val_loss after the epoch's last update, in
  inference mode, so it is exactly `evaluate` on the validation data with that epoch's end weights.
- without: a logged `loss` is a running mean over weights that change during the epoch, in training
  mode, and matches no single set of weights. The only exact relation is the next epoch: one more
  epoch of fit from the end-of-epoch-k weights (`fit_epoch`, shuffle=False) reports what the run
  logged for epoch k+1 when it too ran with shuffle=False on the same data and batch size, with no
  random layers. That is what is tested; otherwise `matched_epoch` is null.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from losscheck.findings import Finding, Severity
from losscheck.loading.history import History


# ----------------------------------------------------------------------------------------------
# Matching
# ----------------------------------------------------------------------------------------------
def _close(a: float, b: float, rtol: float) -> bool:
    return abs(a - b) <= rtol * max(abs(a), abs(b), 1e-12)


def _nearest(values: list[float | None], target: float) -> int | None:
    best = None
    for i, v in enumerate(values):
        if v is not None and (best is None or abs(v - target) <= abs(values[best] - target)):  # type: ignore[operator]
            best = i
    return best


@dataclass
class Match:
    """What `match` found: the section for the report, and the reason when nothing matched."""

    section: dict[str, Any]
    mismatch: str | None = None  # the history-mismatch message
    mismatch_info: bool = False  # an expected mismatch (no validation data): info, not warning
    notes: list[str] = field(default_factory=list)

    def findings(self) -> list[Finding]:
        """history-mismatch when no epoch matched (info when no exact match was possible)."""
        if not self.mismatch:
            return []
        return [Finding("history-mismatch", self.mismatch,
                        advice="Evaluate the file's weights on the validation data fit used (same arrays, same "
                               "split) and compare with the val_loss of the epoch you saved.",
                        severity=Severity.INFO if self.mismatch_info else None)]


def match(hist: History, figures: dict[str, float], rtol: float, has_val: bool) -> Match:
    """The epoch whose logged figure these weights reproduce (see the module docstring)."""
    tol = max(rtol, 1e-6)
    section: dict[str, Any] = {
        "path": str(hist.path), "format": hist.format, "epochs": list(hist.epochs),
        "loss": list(hist.loss), "val_loss": None if hist.val_loss is None else list(hist.val_loss),
        "matched_epoch": None, "compared": None, "best_epoch": None,
    }
    out = Match(section)
    val = hist.val_loss
    if val is not None and any(v is not None for v in val):
        best = min((i for i, v in enumerate(val) if v is not None), key=lambda i: (val[i], i))
        section["best_epoch"] = hist.epochs[best]
    if has_val and "evaluate_val" in figures:
        target = figures["evaluate_val"]
        section["compared"] = "evaluate_val vs val_loss"
        if val is None or all(v is None for v in val):
            out.mismatch = (f"{hist.path} logs no val_loss (the run had no validation data), so no epoch can be "
                            f"matched to evaluate_val ({target:.6g}).")
            return out
        hits = [i for i, v in enumerate(val) if v is not None and _close(v, target, tol)]
        if hits:
            i = min(hits, key=lambda j: (abs(val[j] - target), -j))  # type: ignore[operator]
            section["matched_epoch"] = hist.epochs[i]
            out.notes += _matched_notes(hist, i, section["best_epoch"])
            return out
        out.mismatch = _val_mismatch(hist, val, target)
        return out
    fit = figures.get("fit_epoch")
    section["compared"] = "fit_epoch vs the next epoch's loss"
    if fit is not None:
        for i in range(len(hist.loss) - 1):
            nxt = hist.loss[i + 1]
            if nxt is not None and _close(nxt, fit, tol):
                section["matched_epoch"] = hist.epochs[i]
                out.notes.append(f"history: one more epoch of fit from these weights reports what epoch "
                                 f"{hist.epochs[i + 1]} logged, so the weights are epoch {hist.epochs[i]}'s.")
                return out
    near = _nearest(hist.loss, figures.get("evaluate", math.nan))
    near_text = (f"; the nearest logged loss is epoch {hist.epochs[near]}'s ({hist.loss[near]:.6g}) against evaluate "
                 f"{figures['evaluate']:.6g}, which is not a match") if near is not None else ""
    out.mismatch = ("Without validation data no epoch can be matched exactly: each logged loss is a running mean "
                    "over weights that change during the epoch, in training mode, not the loss of the saved "
                    f"weights{near_text}. Pass the validation data (--val or --validation-split) to match on "
                    "val_loss.")
    out.mismatch_info = True
    return out


def _matched_notes(hist: History, i: int, best_epoch: int | None) -> list[str]:
    last = len(hist.epochs) - 1
    epoch = hist.epochs[i]
    if i == last and best_epoch is not None and best_epoch != epoch:
        return [f"history: the weights are the last epoch's ({epoch}), not the best one (epoch {best_epoch}, "
                "lowest val_loss): EarlyStopping(restore_best_weights=True) restores the best weights only when "
                "it stops training early, and ModelCheckpoint(save_best_only=True) would have saved epoch "
                f"{best_epoch}."]
    if i != last:
        what = "the best epoch (lowest val_loss)" if best_epoch == epoch else "not the best epoch"
        return [f"history: the weights are epoch {epoch}'s of {hist.epochs[last]} ({what}): a checkpoint "
                "(ModelCheckpoint, or EarlyStopping(restore_best_weights=True) that stopped early), not the "
                "end of training."]
    return []


def _val_mismatch(hist: History, val: list[float | None], target: float) -> str:
    known = [v for v in val if v is not None]
    near = _nearest(val, target)
    assert near is not None
    nearest = float(val[near])  # type: ignore[arg-type]
    rel = abs(nearest - target) / max(abs(nearest), 1e-12)
    head = (f"evaluate_val ({target:.6g}) matches no logged val_loss; the nearest is epoch {hist.epochs[near]}'s "
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
