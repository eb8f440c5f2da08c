"""One compiled step per pass, on whichever backend Keras runs: `tf.function` on TensorFlow, `jax.jit`
on JAX, a plain Python call elsewhere (torch runs eagerly, as Keras's own torch trainer does without
jit_compile). Every pass stays batch-wise: one call per batch, never per sample."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from losscheck._tf import keras, tf


def backend() -> str:
    """The backend Keras was imported on: "tensorflow", "jax", "torch", ..."""
    return keras.backend.backend()


def is_tensorflow() -> bool:
    return backend() == "tensorflow"


def keras_mask(tensor: Any) -> Any:
    """The Keras mask attached to an output (an attribute on TensorFlow tensors, a side table on
    backends whose arrays take no attributes), or None."""
    try:
        from keras.src.backend.common.masking import get_keras_mask
    except ImportError:  # pragma: no cover - older Keras: the attribute only
        return getattr(tensor, "_keras_mask", None)
    return get_keras_mask(tensor)


def build_state(model, x: Any, y: Any, sample_weight: Any = None) -> None:
    """Create every variable the model's call, compiled loss and metrics need, from one batch's shapes,
    outside any compiled step (what Keras's trainers do before their first step; a variable created
    while JAX traces would hold a tracer). TensorFlow creates them while tracing: nothing to do."""
    if is_tensorflow():
        return
    model._symbolic_build(data_batch=(x, y, sample_weight))


def compile_step(fn: Callable[..., Any], variables: Sequence[Any] = (), input_signature: list | None = None,
                 reduce_retracing: bool = True) -> Callable[..., Any]:
    """`fn(*args)` compiled for the backend.

    TensorFlow: tf.function(fn, autograph=False) (with `input_signature` when given), as Keras compiles
    its own steps (do_not_convert): Python control flow in fn and the layers runs while tracing. fn reads
    and assigns Keras variables as it would eagerly.
    JAX: jax.jit over a pure function of the values of `variables`: fn runs in a Keras StatelessScope
    that maps each variable to its traced value, and each variable fn assigns (metric state, seed
    states) is written back after the call. Variables outside `variables` are read as constants.
    torch: fn itself, without autograd (Keras's torch trainer runs eagerly unless jit_compile).
    Other backends: fn itself."""
    name = backend()
    if name == "tensorflow":  # without AutoGraph, as Keras compiles its own train/test/predict steps
        if input_signature is not None:
            return tf.function(fn, input_signature=input_signature, autograph=False)
        return tf.function(fn, reduce_retracing=reduce_retracing, autograph=False)
    if name == "torch":  # eager, as Keras's torch trainer runs evaluate; no autograd graph is needed
        import torch

        def eager(*args):
            with torch.no_grad():
                return fn(*args)

        return eager
    if name != "jax":
        return fn
    import jax

    variables = list(variables)

    def pure(values, args):
        mapping = list(zip(variables, values, strict=True))
        with keras.StatelessScope(state_mapping=mapping, collect_losses=True) as scope:
            out = fn(*args)
            new = {}
            for i, (var, old) in enumerate(mapping):
                value = scope.get_current_value(var)
                if value is not None and value is not old:
                    new[i] = value
        return out, new

    jitted = jax.jit(pure)

    def step(*args):
        out, new = jitted([v.value for v in variables], args)
        for i, value in new.items():
            variables[i].assign(value)
        return out

    return step
