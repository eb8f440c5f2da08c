"""Rules of the history area (see losscheck.rules): a logged history that no epoch of which the
weights reproduce."""

from __future__ import annotations

from losscheck.core.finding import Finding
from losscheck.measurements import Measurements
from losscheck.measurements.history import HistoryMeasurements
from losscheck.rules import rule


@rule("history-mismatch")
def history_mismatch(m: Measurements) -> list[Finding]:
    """With validation data, the weights reproduce no logged val_loss, or not the val_loss of the
    --epoch chosen: why, from where evaluate_val lies among the logged values. (Without validation
    data the epoch is the last one or --epoch: see the history notes.)"""
    h = m.history
    if h is None or not h.on_validation:
        return []
    target = float(m.figures["evaluate_val"])
    val = h.val_loss
    assert val is not None
    if h.matched_epoch is None:
        message = _val_mismatch(h, val, target)
    else:
        i = h.matched_index
        assert i is not None
        logged = val[i]
        if h.chosen_by != "--epoch" or logged is None or _close(logged, target, max(m.rtol, 1e-6)):
            return []
        message = (f"--epoch {h.matched_epoch}: its logged val_loss ({logged:.6g}) is not evaluate_val "
                   f"({target:.6g}, {logged - target:+.3g}), so the weights are likely not that epoch's; "
                   + _val_mismatch(h, val, target))
    return [Finding("history-mismatch", message,
                    advice="Evaluate the file's weights on the validation data fit used (same arrays, same "
                           "split, same batch size) and compare with the val_loss of the epoch you saved.")]


def _close(a: float, b: float, rtol: float) -> bool:
    return abs(a - b) <= rtol * max(abs(a), abs(b), 1e-12)


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
    batch = f" at batch {h.batch_size}" if h.batch_size else ""
    head = (f"evaluate_val ({target:.6g}{batch}) matches no logged val_loss; the nearest is epoch "
            f"{h.epochs[near]}'s ({nearest:.6g}, {rel:.2%} off).")
    if target < min(known):
        why = ("It is lower than every logged val_loss: the weights are likely from after this history (training "
               "resumed, or a checkpoint of a later run), or this validation set is not the one fit used.")
    elif target > max(known):
        why = ("It is higher than every logged val_loss: this validation set is likely not the one fit used "
               "(validation_split takes the last fraction of the arrays as passed to fit, before shuffling), or "
               "the weights come from another run.")
    elif rel < 1e-2:
        why = ("It is close to that epoch: likely the same weights evaluated on slightly different data or with a "
               f"different batch size than fit's{' (pass it as --batch-size)' if batch else ''} (with a loss that "
               "depends on it, e.g. reduction='sum'), or a float16 model.")
    else:
        why = ("It lies between logged values: likely a different validation set, a different batch size than "
               "fit's (for a loss that depends on it), or weights from a checkpoint of another run.")
    return f"{head} {why}"
