"""The layer-call wrapper the training-mode passes run every variant through in one traced step:
per-layer forced `training`, and calls memoized within a trace so that what variants share is
computed once."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

from losscheck._tf import keras, tf
from losscheck.loading.memory import call_state_variables
from losscheck.probes.compiled import is_tensorflow
from losscheck.probes.layers import all_layers


class VariantCalls:
    """Shadows `call` on every layer of a model (instance attribute, like `forced_training`) with a
    wrapper that (1) forces `training=True` on the layers of the current variant and (2) memoizes the
    call within one trace, keyed on the input tensors' identities, the other arguments, the effective
    `training` and which forced or held-off layers sit below the layer (nested models). Reset per trace. A layer
    that reads a variable in `unshared` (each variant holds its own value) is never memoized."""

    def __init__(self, model, unshared: Sequence[Any] = ()) -> None:
        self.layers = [lyr for lyr in all_layers(model) if "call" not in lyr.__dict__]
        ids = {id(v) for v in unshared}
        self.unshared = {id(lyr) for lyr in self.layers
                         if ids and any(id(v) in ids for v in call_state_variables(lyr))}
        # the layers below each layer (its own forced/held-off state is in the `training` its call receives)
        self.inside = {id(lyr): {id(s) for s in lyr._flatten_layers(include_self=False, recursive=True)}
                       for lyr in self.layers}
        self.forced: set[int] = set()
        self.off: set[int] = set()
        self.cache: dict[tuple, tuple] = {}

    def reset(self) -> None:
        self.cache = {}

    def force(self, layers: Sequence[Any], off: Sequence[Any] = ()) -> None:
        """`layers` run with training=True, `off` with training=False (even when a layer around them
        passes its own `training` on), every other layer as the outer call says."""
        self.forced = {id(lyr) for lyr in layers}
        self.off = {id(lyr) for lyr in off} - self.forced

    def __enter__(self) -> VariantCalls:
        for layer in self.layers:
            layer.__dict__["call"] = self._wrap(layer, layer.call)
        return self

    def __exit__(self, *exc) -> None:
        for layer in self.layers:
            layer.__dict__.pop("call", None)
        self.cache = {}

    def _wrap(self, layer, original):
        me = id(layer)
        stateful = bool(getattr(layer, "stateful", False)) or me in self.unshared

        @functools.wraps(original)
        def call(*args, **kwargs):
            if me in self.forced:
                kwargs["training"] = True
            elif me in self.off:
                kwargs["training"] = False
            key = None if stateful else _call_key(args, kwargs)
            if key is None:
                return original(*args, **kwargs)
            inside = self.inside[me]
            key = (me, key, frozenset(self.forced & inside), frozenset(self.off & inside))
            hit = self.cache.get(key)
            if hit is not None:
                return hit[0]
            out = original(*args, **kwargs)
            self.cache[key] = (out, args, kwargs)  # keep the inputs alive: their ids stay unique
            return out

        return call


def _call_key(args, kwargs) -> tuple | None:
    """A hashable key of a layer call's arguments: tensors by identity, plain values by value; None
    when an argument is neither (then the call is not memoized)."""
    parts: list[Any] = []
    tensorflow = is_tensorflow()
    flatten = tf.nest.flatten if tensorflow else keras.tree.flatten
    for leaf in flatten([list(args), dict(kwargs)]):
        if (tensorflow and isinstance(leaf, (tf.Tensor, tf.Variable))) or hasattr(leaf, "_keras_history") or \
                keras.ops.is_tensor(leaf):
            parts.append(("t", id(leaf)))
        elif leaf is None or isinstance(leaf, (bool, int, float, str)):
            parts.append(leaf)
        else:
            return None
    parts.append(tuple(sorted(kwargs)))
    return tuple(parts)
