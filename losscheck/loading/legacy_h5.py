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


_NESTED_MODELS = {"Functional", "Model", "Sequential"}
_NODE_ERRORS = ("disconnected nodes", "node index out of bounds")


def is_node_error(text: str) -> bool:
    low = text.lower()
    return any(e in low for e in _NODE_ERRORS)


def fixable(text: str) -> bool:
    """Is this Keras load error one load_patched may get past?"""
    return leftovers(text) is not None or is_node_error(text)


def _refs(node: Any):
    """Every [layer name, node index, tensor index(, kwargs)] reference inside inbound_nodes/output_layers."""
    if isinstance(node, list):
        if len(node) in (3, 4) and isinstance(node[0], str) and isinstance(node[1], int) and isinstance(node[2], int):
            yield node
        else:
            for item in node:
                yield from _refs(item)
    elif isinstance(node, dict):
        history = node.get("keras_history")
        if isinstance(history, list) and len(history) == 3 and isinstance(history[0], str):
            yield history
        for item in node.values():
            yield from _refs(item)


def renumber_nested(config: Any) -> list[str]:
    """tf.keras gives a nested model a node of its own (index 0), so its calls in the outer graph are
    nodes 1, 2, ...; a Keras 3 model has no such node and its legacy loader does not shift the indices.
    Shift them (in every functional graph of the config); returns the nested models' names."""
    shifted: list[str] = []

    def visit(cfg: Any) -> None:
        if isinstance(cfg, list):
            for item in cfg:
                visit(item)
            return
        if not isinstance(cfg, dict):
            return
        inner = cfg.get("config")
        if isinstance(inner, dict) and isinstance(inner.get("layers"), list):
            layers = [lyr for lyr in inner["layers"] if isinstance(lyr, dict)]
            nested = {lyr.get("name") or (lyr.get("config") or {}).get("name") for lyr in layers
                      if lyr.get("class_name") in _NESTED_MODELS}
            sources = [lyr.get("inbound_nodes") for lyr in layers] + [inner.get("output_layers")]
            refs = [r for src in sources for r in _refs(src) if r[0] in nested]
            for name in sorted(n for n in nested if n):
                mine = [r for r in refs if r[0] == name]
                if mine and min(r[1] for r in mine) >= 1:
                    for r in mine:
                        r[1] -= 1
                    shifted.append(name)
            for lyr in layers:
                visit(lyr)

    visit(config)
    return shifted


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
                        raise Unfixable(f"layer {cfg.get('name', '?')!r} ({class_name}) has {key}={value!r}, "
                                        "a tf.keras option Keras 3 does not have")
                    dropped.add(f"{class_name}.{key}")
        for value in node.values():
            _strip(value, class_name, keys, dropped)
    elif isinstance(node, list):
        for value in node:
            _strip(value, class_name, keys, dropped)


def load_patched(path: Path, first_error: Exception, custom_objects: dict[str, Any], safe_mode: bool,
                 max_rounds: int = 12) -> tuple[Any, list[str]]:
    """Retry Keras's own h5 loading on an in-memory copy of the config with the tf.keras incompatibilities
    fixed: harmless leftover keys dropped, nested-model node indices shifted. Returns (model, what was
    adapted, in words). Raises Unfixable, or the last Keras error."""
    import h5py
    from keras.src.legacy.saving import legacy_h5_format, saving_options
    from keras.src.legacy.saving import saving_utils as legacy_saving_utils
    from keras.src.saving import serialization_lib

    if not fixable(str(first_error)):
        raise Unfixable(str(first_error))
    with h5py.File(path, "r") as f:
        raw = f.attrs.get("model_config")
        if isinstance(raw, bytes):
            raw = raw.decode("utf-8")
        config = json.loads(raw)
        dropped: set[str] = set()
        moved: list[str] = []
        renumbered = False
        error: Exception = first_error
        for _ in range(max_rounds):
            text = str(error)
            found = leftovers(text)
            if found is not None:
                class_name, keys = found
                unknown = [k for k in keys if not _known(k)]
                if unknown:
                    raise Unfixable(f"{class_name} has {', '.join(unknown)}, option(s) Keras 3 does not have")
                before = copy.deepcopy(config)
                _strip(config, class_name, set(keys), dropped)
                if config == before:
                    raise error
            elif is_node_error(text) and not renumbered:
                renumbered = True
                shifted = renumber_nested(config)
                if not shifted:
                    raise error
                moved.extend(shifted)
            else:
                raise error
            try:
                with saving_options.keras_option_scope(use_legacy_config=True), \
                        serialization_lib.SafeModeScope(safe_mode):
                    # Keras's deserialization may change the config it is given: it gets a copy
                    model = legacy_saving_utils.model_from_config(copy.deepcopy(config),
                                                                  custom_objects=custom_objects)
                    legacy_h5_format.load_weights_from_hdf5_group(f["model_weights"], model)
                done = [f"left out {', '.join(sorted(dropped))}"] if dropped else []
                if moved:
                    done.append(f"shifted the node indices of nested model(s) {', '.join(moved)} (tf.keras counts "
                                "one more node per nested model)")
                return model, done
            except Exception as exc:  # noqa: BLE001 - the next incompatibility, or a real problem
                error = exc
        raise error
