"""--history: the loss the user logged per epoch, read from a Keras `History.history` JSON, a
`CSVLogger` CSV or a TensorBoard log folder (read by loading/history.py), and the epoch whose
weights the model file holds.

Matching (`matched_epoch`; when none matched, losscheck.rules.history says why):
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

from dataclasses import dataclass, field
from typing import Any

from losscheck.loading.history import History
from losscheck.measurements.history import FIT_COMPARED, VAL_COMPARED, HistoryMeasurements


# ----------------------------------------------------------------------------------------------
# Matching
# ----------------------------------------------------------------------------------------------
def _close(a: float, b: float, rtol: float) -> bool:
    return abs(a - b) <= rtol * max(abs(a), abs(b), 1e-12)


@dataclass
class Match:
    """What `match` found: the section for the report, its notes, and the facts the history rule
    reads (losscheck.rules.history)."""

    section: dict[str, Any]
    facts: HistoryMeasurements
    notes: list[str] = field(default_factory=list)


def match(hist: History, figures: dict[str, float], rtol: float, has_val: bool) -> Match:
    """The epoch whose logged figure these weights reproduce (see the module docstring)."""
    tol = max(rtol, 1e-6)
    section: dict[str, Any] = {
        "path": str(hist.path), "format": hist.format, "epochs": list(hist.epochs),
        "loss": list(hist.loss), "val_loss": None if hist.val_loss is None else list(hist.val_loss),
        "matched_epoch": None, "compared": None, "best_epoch": None,
    }
    notes: list[str] = []
    val = hist.val_loss
    if val is not None and any(v is not None for v in val):
        best = min((i for i, v in enumerate(val) if v is not None), key=lambda i: (val[i], i))
        section["best_epoch"] = hist.epochs[best]
    if has_val and "evaluate_val" in figures:
        target = figures["evaluate_val"]
        section["compared"] = VAL_COMPARED
        if val is not None:
            hits = [i for i, v in enumerate(val) if v is not None and _close(v, target, tol)]
            if hits:
                i = min(hits, key=lambda j: (abs(val[j] - target), -j))  # type: ignore[operator]
                section["matched_epoch"] = hist.epochs[i]
                notes += _matched_notes(hist, i, section["best_epoch"])
    else:
        fit = figures.get("fit_epoch")
        section["compared"] = FIT_COMPARED
        if fit is not None:
            for i in range(len(hist.loss) - 1):
                nxt = hist.loss[i + 1]
                if nxt is not None and _close(nxt, fit, tol):
                    section["matched_epoch"] = hist.epochs[i]
                    notes.append(f"history: one more epoch of fit from these weights reports what epoch "
                                 f"{hist.epochs[i + 1]} logged, so the weights are epoch {hist.epochs[i]}'s.")
                    break
    facts = HistoryMeasurements(
        path=str(hist.path), format=hist.format, epochs=tuple(hist.epochs), loss=tuple(hist.loss),
        val_loss=None if val is None else tuple(val), compared=section["compared"],
        matched_epoch=section["matched_epoch"], best_epoch=section["best_epoch"])
    return Match(section, facts, notes)


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
