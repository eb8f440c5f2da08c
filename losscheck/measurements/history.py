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
    "fit_epoch vs the next epoch's loss"; matched_epoch: the epoch whose weights the model holds
    (None when no epoch matched); matched_index: its position in `epochs`; best_epoch: the epoch with
    the lowest val_loss (None without)."""

    path: str
    format: str
    epochs: tuple[int, ...]
    loss: tuple[float | None, ...]
    val_loss: tuple[float | None, ...] | None
    compared: str
    matched_epoch: int | None = None
    best_epoch: int | None = None
    matched_index: int | None = None

    @property
    def on_validation(self) -> bool:
        """The match was tried on val_loss against evaluate_val."""
        return self.compared == VAL_COMPARED


#: HistoryMeasurements.compared with validation data, and without
VAL_COMPARED = "evaluate_val vs val_loss"
FIT_COMPARED = "fit_epoch vs the next epoch's loss"
