"""Measurements of one area: a training history read from a file, matched against the figures."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class HistoryMeasurements:
    """A training history read from a file (loading/history.py), matched against the figures
    (probes/history.py).

    path, format: the file and its kind (json | csv | tensorboard); epochs: numbered from 1;
    loss, val_loss: the logged values per epoch (None where missing; val_loss None when the run logged
    none); compared: what was matched: "evaluate_val vs val_loss" (with validation data) or
    "fit_epoch vs the next epoch's loss"; matched_epoch: the epoch whose weights the model holds, the
    one fit_logged / val_loss_logged are read from (None when none can be named); matched_index: its
    position in `epochs`; chosen_by: how it was chosen (CHOSEN_BY); best_epoch: the epoch with the
    lowest val_loss (None without); batch_size: the batch size of the figures it was compared with."""

    path: str
    format: str
    epochs: tuple[int, ...]
    loss: tuple[float | None, ...]
    val_loss: tuple[float | None, ...] | None
    compared: str
    matched_epoch: int | None = None
    best_epoch: int | None = None
    matched_index: int | None = None
    chosen_by: str | None = None
    batch_size: int | None = None

    @property
    def on_validation(self) -> bool:
        """The match was tried on val_loss against evaluate_val."""
        return self.compared == VAL_COMPARED


#: HistoryMeasurements.compared with validation data, and without
VAL_COMPARED = "evaluate_val vs val_loss"
FIT_COMPARED = "fit_epoch vs the next epoch's loss"
#: HistoryMeasurements.chosen_by: the logged val_loss equals evaluate_val; one more epoch of fit
#: reports the next epoch's logged loss; the last logged epoch (a model saved after fit holds its
#: weights; nothing in the log says otherwise); the user's --epoch
CHOSEN_BY = ("val_loss", "fit_epoch", "last", "--epoch")
