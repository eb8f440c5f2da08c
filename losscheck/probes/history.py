"""--history: the loss the user logged per epoch, read from a Keras `History.history` JSON, a
`CSVLogger` CSV or a TensorBoard log folder (read by loading/history.py), matched against the
figures: the epoch whose weights the model file holds (its section and notes: report/measured.py),
whose logged `loss` and `val_loss` become the figures fit_logged and val_loss_logged.

Which epoch (`matched_epoch`, `chosen_by`; when none can be named, losscheck.rules.history says why):
- `--epoch K`: epoch K (with validation data, history-mismatch says so when its val_loss disagrees).
- with validation data (`--val` / `--validation-split`) and a logged val_loss: the epoch whose logged `val_loss` equals
  `evaluate_val` within the tolerance. Keras computes val_loss after the epoch's last update, in
  inference mode, so it is exactly `evaluate` on the validation data with that epoch's end weights
  (what ModelCheckpoint(save_best_only=True) saves shows here as an earlier epoch). None otherwise.
- without: a logged `loss` is a running mean over weights that change during the epoch, in training
  mode, and matches no single set of weights. One relation is exact: one more epoch of fit from the
  end-of-epoch-k weights (`fit_epoch`, shuffle=False) reports what the run logged for epoch k+1 when it
  too ran with shuffle=False on the same data and batch size, with no random layers; that epoch is
  taken when it holds. Otherwise the last logged epoch: a model saved after fit holds its weights.
"""

from __future__ import annotations

from losscheck.loading.history import History
from losscheck.measurements.history import FIT_COMPARED, VAL_COMPARED, HistoryMeasurements


def _close(a: float, b: float, rtol: float) -> bool:
    return abs(a - b) <= rtol * max(abs(a), abs(b), 1e-12)


def _on_val_loss(val: list[float | None] | None, target: float, tol: float) -> int | None:
    """The epoch index whose val_loss equals `target` (the nearest of several, the later of equals)."""
    if val is None:
        return None
    hits = [i for i, v in enumerate(val) if v is not None and _close(v, target, tol)]
    return min(hits, key=lambda j: (abs(val[j] - target), -j)) if hits else None  # type: ignore[operator]


def _on_next_loss(loss: list[float | None], fit: float | None, tol: float) -> int | None:
    """The epoch index k whose next epoch's logged loss equals fit_epoch."""
    if fit is None:
        return None
    for i in range(len(loss) - 1):
        nxt = loss[i + 1]
        if nxt is not None and _close(nxt, fit, tol):
            return i
    return None


def match(hist: History, figures: dict[str, float], rtol: float, has_val: bool, epoch: int | None = None,
          batch_size: int | None = None) -> HistoryMeasurements:
    """The epoch whose weights these are (see the module docstring); `epoch`: the user's --epoch."""
    tol = max(rtol, 1e-6)
    val = hist.val_loss
    best_epoch = None
    if val is not None and any(v is not None for v in val):
        best = min((i for i, v in enumerate(val) if v is not None), key=lambda i: (val[i], i))
        best_epoch = hist.epochs[best]
    on_val = has_val and "evaluate_val" in figures and best_epoch is not None
    compared = VAL_COMPARED if on_val else FIT_COMPARED
    chosen: int | None
    if epoch is not None:
        chosen, by = hist.epochs.index(epoch), "--epoch"
    elif on_val:
        chosen, by = _on_val_loss(val, figures["evaluate_val"], tol), "val_loss"
    else:
        chosen, by = _on_next_loss(hist.loss, figures.get("fit_epoch"), tol), "fit_epoch"
        if chosen is None:
            chosen, by = len(hist.epochs) - 1, "last"
    return HistoryMeasurements(
        path=str(hist.path), format=hist.format, epochs=tuple(hist.epochs), loss=tuple(hist.loss),
        val_loss=None if val is None else tuple(val), compared=compared,
        matched_epoch=None if chosen is None else hist.epochs[chosen], best_epoch=best_epoch,
        matched_index=chosen, chosen_by=None if chosen is None else by, batch_size=batch_size)


def logged_figures(h: HistoryMeasurements) -> dict[str, float]:
    """fit_logged and val_loss_logged: what the run logged for the matched epoch (none when no epoch is
    matched or the value was not logged)."""
    i = h.matched_index
    if i is None:
        return {}
    out: dict[str, float] = {}
    if h.loss[i] is not None:
        out["fit_logged"] = float(h.loss[i])  # type: ignore[arg-type]
    if h.val_loss is not None and h.val_loss[i] is not None:
        out["val_loss_logged"] = float(h.val_loss[i])  # type: ignore[arg-type]
    return out
