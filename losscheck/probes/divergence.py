"""Where training turns non-finite: `Watch` notes the first step of Keras's own fit whose logged loss
or updated weights are not finite and ends the fit with that epoch; `locate` replays the fit from the
saved state up to that step and takes it apart (TensorFlow backend): input -> forward (per layer, in
call order) -> loss -> gradient (per variable) -> update (per variable). Every variable is put back
afterwards.

Without a per-step weights check (a watch that sees the loss only), a non-finite gradient or update
shows in the next step's loss: when the weights at the start of the detected step are already
non-finite, the step before is the one taken apart.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from losscheck._tf import keras
from losscheck.measurements.training import TrainingNonFinite

#: how many of the largest gradient norms of the step before the record keeps
TOP_NORMS = 5


@dataclass(frozen=True)
class StepAt:
    """A training step: `epoch` and `step` count from 0, as Keras's callbacks do."""

    epoch: int
    step: int


def _weights_check(model: Any) -> Any:
    """A function telling whether every trainable variable is finite, one compiled call per step
    (TensorFlow reads the variables in place); None on other backends, whose fit holds the variables'
    values outside them until the end of training."""
    variables = [v for v in model.trainable_variables if "float" in str(v.dtype)]
    if not variables:
        return lambda: True
    if keras.backend.backend() != "tensorflow":
        return None
    import tensorflow as tf

    @tf.function
    def finite():
        return tf.reduce_all(tf.stack([tf.reduce_all(tf.math.is_finite(v.value)) for v in variables]))

    return lambda: bool(finite())


class Watch(keras.callbacks.Callback):
    """Remembers the first batch whose logged loss or updated weights are not finite (a loss that stays
    finite may hide non-finite weights, e.g. behind a ReLU) and stops fit at the end of that epoch;
    with `stop_at`, stops before that step instead (a replay)."""

    def __init__(self, stop_at: StepAt | None = None) -> None:
        super().__init__()
        self.stop_at, self.epoch = stop_at, 0
        self.found: StepAt | None = None
        self.last: StepAt | None = None
        self._weights_finite: Any = None

    def on_train_begin(self, logs: Any = None) -> None:
        if self.stop_at is None:
            self._weights_finite = _weights_check(self.model)

    def on_epoch_begin(self, epoch: int, logs: Any = None) -> None:
        self.epoch = epoch

    def on_train_batch_end(self, batch: int, logs: Any = None) -> None:
        if self.stop_at is not None:
            if (self.epoch, batch + 1) == (self.stop_at.epoch, self.stop_at.step):
                self.model.stop_training = True
            return
        self.last = StepAt(self.epoch, batch)
        if self.found is not None:
            return
        loss = (logs or {}).get("loss")
        weights_finite = self._weights_finite
        if ((loss is not None and not math.isfinite(float(np.asarray(loss))))
                or (weights_finite is not None and not weights_finite())):
            self.found = StepAt(self.epoch, batch)

    def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
        """The epoch with the first non-finite step runs to its end (its logged loss is what Keras's fit
        reports); no further epoch runs."""
        if self.stop_at is None and self.found is not None:
            self.model.stop_training = True

    def on_train_end(self, logs: Any = None) -> None:
        """Without a per-step weights check, non-finite weights with a finite loss are seen here: the last
        step is the one found (a replay then looks at the step before too)."""
        if self.stop_at is None and self.found is None and self._weights_finite is None and self.last is not None:
            if not all(finite(v) for v in self.model.trainable_variables):
                self.found = self.last


def finite(value: Any) -> bool:
    """Whether a tensor or array holds no NaN or Inf (non-float values are finite)."""
    a = np.asarray(value)
    return not np.issubdtype(a.dtype, np.floating) or bool(np.all(np.isfinite(a)))


def _replay_to(fit: Any, at: StepAt, restore: Any) -> None:
    """Put the saved state back and let Keras's fit run every step before `at`."""
    restore()
    if at.step > 0:
        fit(at.epoch + 1, [Watch(stop_at=at)])
    elif at.epoch > 0:
        fit(at.epoch, [])


def _previous(at: StepAt, steps: int) -> StepAt | None:
    if at.step > 0:
        return StepAt(at.epoch, at.step - 1)
    return StepAt(at.epoch - 1, steps - 1) if at.epoch > 0 else None


def locate(model: Any, data: Any, batch_size: int, class_weight: dict | None, seed: int,
           found: StepAt) -> TrainingNonFinite:
    """Take the non-finite step `found` apart (see the module docstring), the model standing at the state
    the watched fit started from; the model is put back to that state afterwards."""
    from losscheck.loading.memory import assigned_back, state_variables
    from losscheck.probes.fitting import fit_epoch

    def fit(epochs: int, callbacks: list) -> None:
        fit_epoch(model, data, batch_size, class_weight, seed, epochs=epochs, callbacks=callbacks)

    variables = state_variables(model)
    saved = [(var, np.array(var)) for var in variables]

    def restore() -> None:
        for var, value in saved:
            var.assign(value)

    with assigned_back(variables):
        return take_apart_step(model, data, list(data.batch_bounds(batch_size)), class_weight, found,
                               lambda at: _replay_to(fit, at, restore))


def take_apart_step(model: Any, data: Any, bounds: list[tuple[int, int]], class_weight: dict | None,
                    found: StepAt, replay_to: Any, replayable: Any = None) -> TrainingNonFinite:
    """The record of the non-finite step `found`: `replay_to(at)` brings the model to the state just before
    step `at` (every step before it run as the fit ran them); `replayable(at)` tells whether it can
    (default: always). When the weights before `found` are already non-finite, the step before is the
    one taken apart."""
    can = replayable or (lambda at: True)
    at = found
    replay_to(at)
    if not all(finite(v) for v in model.trainable_variables):
        before = _previous(at, len(bounds))
        if before is not None and can(before):
            at = before
    norms: tuple[tuple[str, float], ...] = ()
    last_loss = None
    before = _previous(at, len(bounds))
    if before is not None and can(before):
        replay_to(before)
        last_loss, grads = _loss_and_gradients(model, data, bounds[before.step], class_weight)
        norms = _largest_norms(model, grads)
    replay_to(at)
    where, layer, variable = _take_apart(model, data, bounds[at.step], class_weight)
    first, stop = bounds[at.step]
    return TrainingNonFinite(epoch=at.epoch + 1, step=at.step + 1, samples=(first, stop - 1), where=where,
                             layer=layer, variable=variable,
                             last_finite_loss=last_loss if last_loss is not None and math.isfinite(last_loss)
                             else None,
                             gradient_norms=norms)


def step_batch(data: Any, bound: tuple[int, int], class_weight: dict | None):
    """(xs, ys, sample weights, x, y) of one training batch, class_weight applied as fit applies it."""
    from losscheck.probes.batching import class_weight_sample_weights, structure

    xs, ys, sw = data.slice(*bound)
    if class_weight:
        sw = class_weight_sample_weights(ys[0], class_weight)
    return xs, ys, sw, structure(xs), structure(ys)


def _loss_and_gradients(model: Any, data: Any, bound: tuple[int, int], class_weight: dict | None):
    """(the training-mode loss of the batch at the current weights, its gradients)."""
    import tensorflow as tf

    _, _, sw, x, y = step_batch(data, bound, class_weight)
    with tf.GradientTape() as tape:
        pred = model(x, training=True)
        loss = model.compute_loss(x=x, y=y, y_pred=pred, sample_weight=sw, training=True)
    grads = tape.gradient(loss, model.trainable_variables)
    return float(np.mean(np.asarray(loss))), grads


def _largest_norms(model: Any, grads: list[Any]) -> tuple[tuple[str, float], ...]:
    norms = [(v.path, float(np.linalg.norm(np.asarray(g, dtype="float64")))) for v, g in
             zip(model.trainable_variables, grads, strict=True) if g is not None]
    return tuple(sorted(norms, key=lambda t: (-t[1] if math.isfinite(t[1]) else -math.inf, t[0]))[:TOP_NORMS])


class _LayerOutputs:
    """Records, in call order, each layer whose output is not finite while installed."""

    def __init__(self, model: Any) -> None:
        from losscheck.probes.layers import all_layers

        self.layers = [lyr for lyr in all_layers(model) if hasattr(lyr, "call")]
        self.first: str | None = None

    def __enter__(self) -> _LayerOutputs:
        for layer in self.layers:
            original = layer.call

            def call(*args, __orig=original, __name=layer.name, **kwargs):
                out = __orig(*args, **kwargs)
                if self.first is None and not all(finite(t) for t in keras.tree.flatten(out)):
                    self.first = __name
                return out

            layer.call = call
        return self

    def __exit__(self, *exc: Any) -> None:
        for layer in self.layers:
            if "call" in vars(layer):
                del layer.call


def _take_apart(model: Any, data: Any, bound: tuple[int, int], class_weight: dict | None):
    """(where, layer, variable) of the first non-finite quantity of one training step at the current
    weights: input, forward, loss, gradient, update; where None when every part is finite."""
    import tensorflow as tf

    xs, ys, sw, x, y = step_batch(data, bound, class_weight)
    if not all(finite(a) for a in [*xs, *ys] + ([sw] if sw is not None else [])):
        return "input", None, None
    with tf.GradientTape() as tape:
        with _LayerOutputs(model) as outputs:
            pred = model(x, training=True)
        if outputs.first is not None or not all(finite(t) for t in keras.tree.flatten(pred)):
            return "forward", outputs.first, None
        loss = model.compute_loss(x=x, y=y, y_pred=pred, sample_weight=sw, training=True)
    if not finite(loss):
        return "loss", None, None
    variables = model.trainable_variables
    grads = tape.gradient(loss, variables)
    for var, grad in zip(variables, grads, strict=True):
        if grad is not None and not finite(grad):
            return "gradient", None, var.path
    model.optimizer.apply([g for g in grads], variables)
    for var in variables:
        if not finite(var):
            return "update", None, var.path
    return None, None, None
