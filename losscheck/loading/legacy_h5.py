"""Load tf.keras 2.x .h5 files whose layer configs carry options Keras 3 no longer accepts.

Keras 3's legacy loader passes every saved config key to the Keras 3 layer, so common tf.keras files
fail: every RNN (`time_major`), DepthwiseConv2D (`groups`), MultiHeadAttention (`query_shape`, ...),
SpatialDropout (`trainable`). Those keys have no effect at the values below; losscheck drops them from
an in-memory copy of the config (never the file) and loads exactly as Keras does (same scopes, same
weight loader). Any other unknown key, or one of these at a value that matters, is refused by name.
"""

from __future__ import annotations

import ast
import copy
import json
import re
from pathlib import Path
from typing import Any

_ANY = object()
# key -> the values at which dropping it changes nothing (_ANY: every value)
HARMLESS: dict[str, Any] = {
    "time_major": (False,),  # RNNs: Keras 3 is always batch-major
    "groups": (1,),  # DepthwiseConv2D inherited Conv's groups; 1 = no grouping
    "query_shape": _ANY,  # MultiHeadAttention build shapes: Keras 3 builds on the first call
    "key_shape": _ANY,
    "value_shape": _ANY,
    "softmax_robust_masking": (False,),
    "trainable": _ANY,  # layers without weights (SpatialDropout*) whose Keras 3 __init__ lacks it
    "noise_shape": (None,),  # SpatialDropout* computes its own noise shape
    "kernel_regularizer": (None,),  # SeparableConv* inherited Conv's kernel_* keys, unused there
    "kernel_constraint": (None,),
}


def harmless(key: str, value: Any) -> bool:
    """Dropping this tf.keras-only key at this value changes nothing losscheck measures. Initializers
    never matter: the weights come from the file."""
    if key.endswith("_initializer"):
        return True
    allowed = HARMLESS.get(key)
    return allowed is not None and (allowed is _ANY or value in allowed)


def _known(key: str) -> bool:
    return key in HARMLESS or key.endswith("_initializer")

_UNRECOGNIZED = re.compile(r"Unrecognized keyword arguments passed to (\w+): (\{.*?\})\s*$", re.M)
_UNEXPECTED = re.compile(r"deserializing class '(\w+)'.*?unexpected keyword argument '(\w+)'", re.S)


class Unfixable(Exception):
    """The error is not (only) a harmless tf.keras leftover."""


def leftovers(text: str) -> tuple[str, dict[str, Any]] | None:
    """(layer class, {key: value or _ANY}) when a Keras error is about tf.keras-only config keys."""
    m = _UNRECOGNIZED.search(text)
    if m:
        try:
            keys = ast.literal_eval(m.group(2))
        except (ValueError, SyntaxError):
            return None
        return (m.group(1), keys) if isinstance(keys, dict) else None
    m = _UNEXPECTED.search(text)
    if m:
        return m.group(1), {m.group(2): _ANY}
    return None


def _strip(node: Any, class_name: str, keys: set[str], dropped: set[str]) -> None:
    if isinstance(node, dict):
        cfg = node.get("config")
        if node.get("class_name") == class_name and isinstance(cfg, dict):
            for key in keys:
                if key in cfg:
                    value = cfg.pop(key)
                    if not harmless(key, value):
                        raise Unfixable(f"layer {cfg.get('name', '?')!r} ({class_name}) has {key}={value!r}, a tf.keras "
                                        "option Keras 3 does not have")
                    dropped.add(f"{class_name}.{key}")
        for value in node.values():
            _strip(value, class_name, keys, dropped)
    elif isinstance(node, list):
        for value in node:
            _strip(value, class_name, keys, dropped)


def load_patched(path: Path, first_error: Exception, custom_objects: dict[str, Any], safe_mode: bool,
                 max_rounds: int = 12) -> tuple[Any, list[str]]:
    """Retry Keras's own h5 loading on a config without the harmless tf.keras leftovers.
    Returns (model, dropped "Class.key" names). Raises Unfixable, or the last Keras error."""
    import h5py
    from keras.src.legacy.saving import legacy_h5_format, saving_options
    from keras.src.legacy.saving import saving_utils as legacy_saving_utils
    from keras.src.saving import serialization_lib

    found = leftovers(str(first_error))
    if found is None:
        raise Unfixable(str(first_error))
    with h5py.File(path, "r") as f:
        raw = f.attrs.get("model_config")
        if isinstance(raw, bytes):
            raw = raw.decode("utf-8")
        config = json.loads(raw)
        dropped: set[str] = set()
        error: Exception = first_error
        for _ in range(max_rounds):
            if found is None:
                raise error
            class_name, keys = found
            unknown = [k for k in keys if not _known(k)]
            if unknown:
                raise Unfixable(f"{class_name} has {', '.join(unknown)}, option(s) Keras 3 does not have")
            before = copy.deepcopy(config)
            _strip(config, class_name, set(keys), dropped)
            if config == before:
                raise error
            try:
                with saving_options.keras_option_scope(use_legacy_config=True), \
                        serialization_lib.SafeModeScope(safe_mode):
                    model = legacy_saving_utils.model_from_config(config, custom_objects=custom_objects)
                    legacy_h5_format.load_weights_from_hdf5_group(f["model_weights"], model)
                return model, sorted(dropped)
            except Exception as exc:  # the next leftover, or a real problem
                error = exc
                found = leftovers(str(exc))
        raise error
