"""An in-memory compiled keras.Model as the LoadedModel a file gives (losses, loss weights, output
names from its compile), without saving or recompiling it; and `preserved(model)`, which puts back
everything a run may touch: variables, optimizer and metric state, fit's attributes, and every
random state (Python, NumPy, TensorFlow's global seed, Keras's global seed generator)."""

from __future__ import annotations

import contextlib
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from losscheck._tf import keras
from losscheck.core.errors import LosscheckError, UsageError
from losscheck.loading.compile import LoadedModel, _outputs, _per_output
from losscheck.loading.files import ModelFileInfo
from losscheck.loading.losses import resolve_loss
from losscheck.loading.steps import adds_losses, custom_steps
from losscheck.notes import FIT, Note

LABEL = "<in-memory model>"


def loaded_in_memory(model: Any, custom_objects: dict[str, Any] | None = None) -> LoadedModel:
    """The LoadedModel of a compiled in-memory model. Raises UsageError for an uncompiled one."""
    info = ModelFileInfo(path=Path(LABEL), format="memory", keras_version=keras.__version__,
                         compile_config=None, model_config=None)
    compile_loss = getattr(model, "_compile_loss", None)
    own_loss = bool(custom_steps(model)) or adds_losses(model)  # the loss is in add_loss or the model's steps
    if not getattr(model, "compiled", False) or (compile_loss is None and not own_loss):
        raise UsageError(f"{LABEL}: the model is not compiled with a loss; call model.compile(loss=...) first "
                         "(losscheck never compiles your model)")
    outputs = _outputs(model)
    custom_objects = dict(custom_objects or {})
    notes: list[str] = []
    if compile_loss is None:
        return LoadedModel(model, info, outputs, {o: None for o in outputs}, {o: 1.0 for o in outputs}, "model",
                           _optimizer_state_note(model, notes), notes, custom_objects)
    try:
        raw = _per_output(compile_loss._user_loss, outputs, "loss", info.path)
        losses: dict[str, Any] = {}
        for out, value in raw.items():
            try:
                losses[out] = None if value is None else resolve_loss(value, custom_objects)
            except LookupError as exc:
                raise UsageError(f"{LABEL}: the loss {exc.args[0]!r} of output {out!r} is not a Keras loss; "
                                 "pass custom_objects={name: function}") from exc
        weights = {o: 1.0 for o in outputs}
        raw_weights = compile_loss._user_loss_weights
        if isinstance(raw_weights, (int, float)):
            weights = {o: float(raw_weights) for o in outputs}
        elif raw_weights is not None:
            for o, w in _per_output(raw_weights, outputs, "loss_weights", info.path).items():
                weights[o] = 1.0 if w is None else float(w)
    except LosscheckError:
        raise
    except Exception as exc:
        raise UsageError(f"{LABEL}: its compiled loss cannot be read ({type(exc).__name__}: {exc})") from exc
    restored = _optimizer_state_note(model, notes)
    return LoadedModel(model, info, outputs, losses, weights, "model", restored, notes, custom_objects)


def _optimizer_state_note(model: Any, notes: list[str]) -> bool:
    """Whether the model's optimizer has state (it has been trained); else a note says fit starts fresh."""
    optimizer = getattr(model, "optimizer", None)
    restored = optimizer is not None and bool(getattr(optimizer, "built", False))
    if not restored:
        notes.append(Note("the model's optimizer has no state yet (never trained): fit_epoch starts from a "
                          "fresh optimizer state", FIT))
    return restored


# ----------------------------------------------------------------------------------------------
# Leaving the model (and the process's random state) exactly as it was
# ----------------------------------------------------------------------------------------------
_FIT_ATTRIBUTES = ("history", "stop_training", "_eval_epoch_iterator", "train_function", "test_function",
                   "predict_function", "_train_counter")


def _unique(variables: list[Any]) -> list[Any]:
    seen: set[int] = set()
    out = []
    for var in variables:
        if id(var) not in seen:
            seen.add(id(var))
            out.append(var)
    return out


def layer_states(layer: Any) -> list[Any]:
    """The variables that a layer or model (at any depth) updates in call() but does not list in its
    `variables`: the states of stateful RNNs."""
    found: list[Any] = []
    for sub in layer._flatten_layers(include_self=True, recursive=True):
        states = getattr(sub, "states", None) if getattr(sub, "stateful", False) is True else None
        if states is not None:
            found += [v for v in keras.tree.flatten(states) if isinstance(v, keras.Variable)]
    return found


def call_state_variables(layer: Any) -> list[Any]:
    """What calling a layer or model may change: its non-trainable variables (BatchNormalization
    statistics, seed states, a custom layer's own state) and its stateful RNNs' states, each once."""
    return _unique(list(layer.non_trainable_variables) + layer_states(layer))


def state_variables(model: Any) -> list[Any]:
    """The model's variables, stateful RNN states, metric variables and (once built) optimizer
    variables, each once."""
    found = list(model.variables) + layer_states(model) + list(getattr(model, "metrics_variables", []))
    optimizer = getattr(model, "optimizer", None)
    if optimizer is not None and getattr(optimizer, "built", False):
        found += list(optimizer.variables)
    return _unique(found)


@contextlib.contextmanager
def assigned_back(variables: list[Any]) -> Iterator[None]:
    """Within the block `variables` may change; on exit each holds its value from before the block."""
    snapshot = [(var, np.array(var)) for var in variables]
    try:
        yield
    finally:
        for var, value in snapshot:
            var.assign(value)


@contextlib.contextmanager
def random_state_preserved() -> Iterator[None]:
    """Python's and NumPy's generators, TensorFlow's global seed and op-seed counter, and Keras's
    global seed and global SeedGenerator, as they were."""
    from keras.src.backend.common import global_state
    from keras.src.random import seed_generator
    from tensorflow.python.eager import context

    py_state, np_state = random.getstate(), np.random.get_state()
    keras_seed = global_state.get_global_attribute("global_random_seed")
    generator = global_state.get_global_attribute(seed_generator.GLOBAL_SEED_GENERATOR)
    generator_state = None if generator is None else np.array(generator.state)
    ctx = context.context()
    tf_seed = getattr(ctx, "_seed", None)
    rng = getattr(ctx, "_rng", None)  # absent until a global seed is first set
    tf_rng = None if rng is None else rng.getstate()
    try:
        yield
    finally:
        random.setstate(py_state)
        np.random.set_state(np_state)
        global_state.set_global_attribute("global_random_seed", keras_seed)
        global_state.set_global_attribute(seed_generator.GLOBAL_SEED_GENERATOR, generator)
        if generator is not None:
            generator.state.assign(generator_state)
        ctx._seed = tf_seed
        if tf_rng is None:
            ctx.__dict__.pop("_rng", None)
        else:
            ctx._rng = random.Random()
            ctx._rng.setstate(tf_rng)


@contextlib.contextmanager
def preserved(model: Any) -> Iterator[None]:
    """Within the block the model may be run, fitted and probed; on exit every variable (weights,
    BatchNormalization statistics, stateful RNN states, seed states, optimizer and metric state) holds
    its old value, fit's attributes (history, stop_training, compiled step functions) are put back, and
    so is every random state. An optimizer that has no state yet is swapped for a copy during the block,
    so it stays unbuilt."""
    variables = state_variables(model)
    missing = object()
    attributes = {a: model.__dict__.get(a, missing) for a in _FIT_ATTRIBUTES}
    optimizer = getattr(model, "optimizer", None)
    swapped = optimizer is not None and not getattr(optimizer, "built", False)
    if swapped:
        assert optimizer is not None
        model.optimizer = optimizer.__class__.from_config(optimizer.get_config())
    try:
        with assigned_back(variables), random_state_preserved():
            yield
    finally:
        if swapped:
            model.optimizer = optimizer
        for name, value in attributes.items():
            if value is missing:
                model.__dict__.pop(name, None)
            else:
                model.__dict__[name] = value
