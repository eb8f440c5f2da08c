"""Low-precision compute (mixed_float16 / mixed_bfloat16 policies) and the float32 copy of a model that
`evaluate_float32` measures: same config with float32 policies, same weights and losses."""

from __future__ import annotations

from typing import Any

import numpy as np

from losscheck._tf import keras
from losscheck.probes.layers import all_layers

LOW_PRECISION = ("float16", "bfloat16")


def low_precision_layers(model) -> list[Any]:
    """Layers that compute in float16/bfloat16 (a mixed_float16/mixed_bfloat16 policy, global or per layer)."""
    return [lyr for lyr in all_layers(model) if str(getattr(lyr, "compute_dtype", "")) in LOW_PRECISION]


def _float32_policies(node: Any) -> Any:
    """The serialized config with every low-precision or mixed dtype policy replaced by "float32"."""
    if isinstance(node, list):
        return [_float32_policies(v) for v in node]
    if not isinstance(node, dict):
        return node
    out = {}
    for key, value in node.items():
        if key == "dtype" and isinstance(value, dict) and "DTypePolicy" in str(value.get("class_name", "")):
            name = str((value.get("config") or {}).get("name", ""))
            out[key] = "float32" if ("mixed" in name or name in LOW_PRECISION) else value
        elif key == "dtype" and isinstance(value, str) and ("mixed" in value or value in LOW_PRECISION):
            out[key] = "float32"
        else:
            out[key] = _float32_policies(value)
    return out


def float32_copy(loaded):
    """A new model from the loaded one's config with float32 policies, the loaded weights (variables of
    mixed policies are float32 already) and the same losses, compiled without optimizer; the loaded
    model is not touched. None when the config does not rebuild (e.g. a subclassed model without
    get_config) or the weights do not fit."""
    import dataclasses

    model = loaded.model
    try:
        config = _float32_policies(keras.saving.serialize_keras_object(model))
        with keras.saving.custom_object_scope(dict(loaded.custom_objects or {})):
            copy = keras.saving.deserialize_keras_object(config, safe_mode=not loaded.unsafe)
        copy.set_weights([np.asarray(w, np.float32) if np.asarray(w).dtype.kind == "f" else np.asarray(w)
                          for w in model.get_weights()])
        outputs = loaded.output_names
        losses = [loaded.losses.get(o) for o in outputs]
        weights = [loaded.loss_weights.get(o, 1.0) for o in outputs]
        copy.compile(loss=losses if len(outputs) > 1 else losses[0],
                     loss_weights=weights if len(outputs) > 1 else weights[0])
    except Exception:  # noqa: BLE001 - the float32 figure is optional: no copy, no figure
        return None
    if low_precision_layers(copy):
        return None
    return dataclasses.replace(loaded, model=copy)
