"""The callback's first non-finite step, on the user's own fit: `EpochStart` keeps the model's state at
the start of the epoch being trained (one host copy of every state variable per epoch: weights,
optimizer slots, BatchNormalization statistics, seed states); `locate_in_epoch` replays that epoch's
steps from it, one `train_on_batch` per batch of the callback's data, and takes the non-finite step apart
as the fit probe does (probes/divergence.py).

The replay checks that it is the fit's run: after each replayed step the running mean of its losses must
be what fit logged after that step, and the step taken apart must be non-finite where fit's log says it
was (input, forward or loss for the step whose logged loss turned non-finite, gradient or update for
the one before it). Where fit's batches are not the data's batches in order (fit shuffles arrays unless
shuffle=False), the samples cannot be named and the step is not taken apart.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from losscheck.measurements.training import TrainingNonFinite
from losscheck.probes.divergence import StepAt, finite, step_batch, take_apart_step

#: the relative difference between a replayed and a logged running loss above which the runs differ
ORDER_RTOL = 1e-4

SHUFFLED = ("fit's batches are not the data's batches in order (fit shuffles arrays unless shuffle=False), "
            "so its samples cannot be named")


class EpochStart:
    """The model's state variables and their values at the start of an epoch."""

    def __init__(self, model: Any, epoch: int) -> None:
        from losscheck.loading.memory import state_variables

        self.epoch = epoch
        self.saved = [(var, np.array(var)) for var in state_variables(model)]

    def restore(self) -> None:
        """Every saved variable back to its value at the start of the epoch."""
        for var, value in self.saved:
            var.assign(value)


class OrderDiffers(Exception):
    """The replay is not the run fit made."""


def _close(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=ORDER_RTOL, abs_tol=1e-12)


def locate_in_epoch(model: Any, data: Any, batch_size: int, class_weight: dict | None, start: EpochStart,
                    step: int, logged: list[float]) -> TrainingNonFinite:
    """The record of the first non-finite step of the epoch `start` holds, whose logged loss (the running
    mean fit logs after each step, `logged[0..step]`) turned non-finite at `step` (from 0). The model
    must be preserved by the caller (the replay changes its state)."""
    bounds = list(data.batch_bounds(batch_size))
    epoch = start.epoch
    if step >= len(bounds):
        return unlocated(epoch, step, "fit ran more steps than the data has batches (it is not the data fit sees)")
    trainable = {id(v) for v in model.trainable_variables}
    if not all(finite(value) for var, value in start.saved if id(var) in trainable):
        return unlocated(epoch, step, f"the weights were already non-finite at the start of epoch {epoch + 1}, "
                         "made so by a step of an earlier epoch whose logged loss was finite")

    def replay_to(at: StepAt) -> None:
        start.restore()
        total = count = 0.0
        for j in range(at.step):
            _, _, sw, x, y = step_batch(data, bounds[j], class_weight)
            logs = model.train_on_batch(x, y, sample_weight=sw, return_dict=True)
            n = bounds[j][1] - bounds[j][0]
            total, count = total + float(logs["loss"]) * n, count + n
            if not _close(total / count, logged[j]):
                raise OrderDiffers(j)

    try:
        record = take_apart_step(model, data, bounds, class_weight, StepAt(epoch, step), replay_to,
                                 replayable=lambda at: at.epoch == epoch)
    except OrderDiffers:
        return unlocated(epoch, step, SHUFFLED)
    expected = ("input", "forward", "loss") if record.step == step + 1 else ("gradient", "update")
    if record.where not in expected:
        return unlocated(epoch, step, "replayed on the data's batch, that step is not non-finite where fit's was: "
                        + SHUFFLED + ", or the step is not deterministic")
    return record


def unlocated(epoch: int, step: int, reason: str) -> TrainingNonFinite:
    """The record of the non-finite step `step` of `epoch` (both from 0) that is not taken apart, and why."""
    return TrainingNonFinite(epoch=epoch + 1, step=step + 1, samples=None, where=None, not_taken_apart=reason)


def can_replay() -> bool:
    """Whether a step is taken apart on this backend (the TensorFlow backend only)."""
    from losscheck._tf import keras

    return keras.backend.backend() == "tensorflow"


def locate_watched(loaded: Any, data: Any, batch_size: int, class_weight: dict | None, start: EpochStart | None,
                   epoch: int, step: int, logged: list[float]) -> TrainingNonFinite:
    """The record of the watched fit's non-finite step `step` of `epoch` (from 0): taken apart where it can
    be, else with the reason it is not."""
    why = None
    if data.pipeline:
        why = "a data pipeline batches itself, so its steps cannot be replayed one by one and its samples named"
    elif "train_step" in loaded.loop.steps:
        why = "the model's own train_step computes the step"
    elif start is None or not can_replay():
        why = "it is taken apart on the TensorFlow backend only"
    if why is not None or start is None:
        return unlocated(epoch, step, why or "")
    return locate_in_epoch(loaded.model, data, batch_size, class_weight, start, step, logged)
