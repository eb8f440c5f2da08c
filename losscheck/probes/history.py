"""--history: the loss the user logged per epoch, read from a Keras `History.history` JSON, a
`CSVLogger` CSV or a TensorBoard log folder (read by loading/history.py), matched against the
figures: the epoch whose weights the model file holds (its section and notes: report/measured.py).

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

from losscheck.loading.history import History
from losscheck.measurements.history import FIT_COMPARED, VAL_COMPARED, HistoryMeasurements


def _close(a: float, b: float, rtol: float) -> bool:
    return abs(a - b) <= rtol * max(abs(a), abs(b), 1e-12)


def match(hist: History, figures: dict[str, float], rtol: float, has_val: bool) -> HistoryMeasurements:
    """The epoch whose logged figure these weights reproduce (see the module docstring)."""
    tol = max(rtol, 1e-6)
    best_epoch = matched = None
    val = hist.val_loss
    if val is not None and any(v is not None for v in val):
        best = min((i for i, v in enumerate(val) if v is not None), key=lambda i: (val[i], i))
        best_epoch = hist.epochs[best]
    if has_val and "evaluate_val" in figures:
        target = figures["evaluate_val"]
        compared = VAL_COMPARED
        if val is not None:
            hits = [i for i, v in enumerate(val) if v is not None and _close(v, target, tol)]
            if hits:
                matched = min(hits, key=lambda j: (abs(val[j] - target), -j))  # type: ignore[operator]
    else:
        fit = figures.get("fit_epoch")
        compared = FIT_COMPARED
        if fit is not None:
            for i in range(len(hist.loss) - 1):
                nxt = hist.loss[i + 1]
                if nxt is not None and _close(nxt, fit, tol):
                    matched = i
                    break
    return HistoryMeasurements(
        path=str(hist.path), format=hist.format, epochs=tuple(hist.epochs), loss=tuple(hist.loss),
        val_loss=None if val is None else tuple(val), compared=compared,
        matched_epoch=None if matched is None else hist.epochs[matched], best_epoch=best_epoch,
        matched_index=matched)
