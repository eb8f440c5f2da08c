"""The one-epoch fit: what model.fit(..., epochs=1, shuffle=False) reports as `loss`, on a copy of the
model or on the loaded model itself with every variable it touched put back."""

from __future__ import annotations

from typing import Any, cast

import numpy as np

from losscheck._tf import keras
from losscheck.loading.memory import assigned_back, state_variables
from losscheck.loading.source import DataSource, Pipeline
from losscheck.probes.batching import H5Sequence, structure
from losscheck.probes.data_errors import data_errors


def array_batches(x, y, sample_weight, batch_size: int, class_weight=None) -> Any:
    """In-memory arrays as fit takes them: on TensorFlow, Keras's own array adapter (the adapter fit builds
    for arrays with shuffle=False: the same batches, casts and class weights) whose tf.data pipeline runs
    without autotuning. Autotuning starts a model thread that the iterator's destructor waits for, for up
    to several seconds, at the end of every fit and evaluate; the batches are the same without it. None
    on other backends or a Keras without that adapter (then fit takes the arrays themselves)."""
    if keras.backend.backend() != "tensorflow":
        return None
    try:
        from keras.src.trainers.data_adapters.array_data_adapter import ArrayDataAdapter
    except ImportError:  # pragma: no cover - another Keras layout: fit builds its own adapter
        return None
    import tensorflow as tf

    class QuietArrayAdapter(ArrayDataAdapter):
        def get_tf_dataset(self):
            options = tf.data.Options()
            options.autotune.enabled = False
            return super().get_tf_dataset().with_options(options)

    return QuietArrayAdapter(x, y, sample_weight=sample_weight, class_weight=class_weight, shuffle=False,
                             batch_size=batch_size)


def _validation_data(val: DataSource | None, batch_size: int):
    """fit's validation_data: the arrays' batches (array_batches), else (x, y[, sample_weight]) arrays, or
    batches read from an h5 file."""
    if val is None:
        return None
    if val.streamed:
        return H5Sequence(val, batch_size)
    xs, ys, sw = val.slice(0, val.n)
    quiet = array_batches(structure(xs), structure(ys), sw, batch_size)
    if quiet is not None:
        return quiet
    return (structure(xs), structure(ys)) if sw is None else (structure(xs), structure(ys), sw)


def _fresh_fit_draw(model) -> None:
    """On torch, Keras's fit of a model whose compiled loss or metrics are not built yet (a fresh load)
    first takes one batch from a new torch DataLoader iterator to build them, and that iterator draws
    its base seed from torch's global generator; the fit of a model that earlier passes built skips
    that draw. It is drawn here, so the fit's random numbers (a Dropout without a seed draws its masks
    from that generator on torch) are those of Keras's fit of a fresh load."""
    if keras.backend.backend() != "torch":
        return
    compiled = [getattr(model, "_compile_metrics", None), getattr(model, "_compile_loss", None)]
    if not all(layer.built for layer in model._flatten_layers()) or any(c is not None and not c.built
                                                                         for c in compiled):
        return  # fit builds them itself, with that draw
    import torch

    torch.empty((), dtype=torch.int64).random_()


@data_errors
def fit_epoch(model, data: DataSource, batch_size: int, class_weight=None, seed: int = 0,
              validation: DataSource | None = None, logs: dict[str, float] | None = None, epochs: int = 1,
              callbacks: list | None = None) -> float | None:
    """What model.fit(x, y, batch_size, epochs=1, shuffle=False, sample_weight, class_weight) reports as
    `loss` (None when the model's own train_step logs no `loss`), on `model` (which it changes: see
    fit_epoch_restoring). With `validation`, fit also evaluates it after the epoch
    (validation_data=..., validation_batch_size = batch_size); `logs` receives the epoch's scalar logs
    (loss, val_loss, the model's own keys, ...). With `epochs` N, fit runs up to N epochs (its
    `callbacks` may stop it) and the figure and logs are the first epoch's."""
    keras.utils.set_random_seed(seed)
    _fresh_fit_draw(model)
    run = {"epochs": epochs, "callbacks": callbacks or []}
    val = _validation_data(validation, batch_size)
    if data.pipeline:  # fit consumes the pipeline itself, with its own batching
        pipeline = cast(Pipeline, data)
        history = model.fit(pipeline.keras_input(), shuffle=False, class_weight=class_weight, verbose=0,
                            validation_data=val, **run)
    elif data.streamed:
        seq = H5Sequence(data, batch_size, class_weight)
        history = model.fit(seq, shuffle=False, verbose=0, validation_data=val, **run)
    else:
        xs, ys, sw = data.slice(0, data.n)
        quiet = array_batches(structure(xs), structure(ys), sw, batch_size, class_weight)
        if quiet is not None:  # Keras's adapter for these arrays, class weights applied
            history = model.fit(quiet, shuffle=False, verbose=0, validation_data=val, **run)
        else:
            history = model.fit(structure(xs), structure(ys), batch_size=batch_size, shuffle=False,
                                sample_weight=sw, class_weight=class_weight, verbose=0, validation_data=val, **run)
    if logs is not None:
        logs.update({k: float(np.asarray(v[0])) for k, v in history.history.items()
                     if v and np.asarray(v[0]).size == 1})
    loss = history.history.get("loss")
    return float(loss[0]) if loss else None


def fit_epoch_restoring(model, data: DataSource, batch_size: int, class_weight=None, seed: int = 0,
                        validation: DataSource | None = None, logs: dict[str, float] | None = None,
                        epochs: int = 1, callbacks: list | None = None) -> float | None:
    """`fit_epoch` on the loaded model itself instead of a second copy from the file, then every variable
    it touched is put back (weights, BatchNormalization statistics, stateful RNN states, seed states,
    optimizer and metric state), so the model is left as loaded. Spares a second load; the figure is the
    one a fresh copy gives, since every other pass leaves the model exactly as loaded and the fit starts
    from the same weights, layer state, optimizer state and layer seeds."""
    optimizer = model.optimizer
    if optimizer is not None and not optimizer.built:
        optimizer.build(model.trainable_variables)  # what fit's first step does; its state then is saved too
    with assigned_back(state_variables(model)):
        return fit_epoch(model, data, batch_size, class_weight, seed, validation, logs, epochs, callbacks)
