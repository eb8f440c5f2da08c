"""Turn a saved loss configuration (Keras 3 or tf.keras 2.x dialect) into a Keras 3 Loss object, and a
Keras Loss object into the reference's LossSpec.

Accepted: strings ("mse", "binary_crossentropy", class names), Keras 3 serialized objects
({"module", "class_name", "config"}), tf.keras Loss configs ({"class_name", "config": {"reduction":
"auto", "fn": ...}}), callables (functions, Loss classes/instances).
The Keras-object -> reference LossSpec mapping lives in losscheck/lossspec.py.
"""

from __future__ import annotations

import copy
from typing import Any

from losscheck._tf import keras

try:  # private, but stable since Keras 3.0; the wrapper compile() puts around every function loss
    from keras.src.losses.losses import LossFunctionWrapper
except ImportError:  # pragma: no cover
    LossFunctionWrapper = None  # type: ignore[assignment,misc]

_KERAS2_REDUCTIONS = {"auto": "sum_over_batch_size", "sum_over_batch_size": "sum_over_batch_size",
                      None: "sum_over_batch_size", "sum": "sum", "none": "none", "mean": "mean",
                      "mean_with_sample_weight": "mean_with_sample_weight"}
_AUTO_CE = ("crossentropy", "ce")


def _wrap_function(fn, name: str):
    return LossFunctionWrapper(fn, name=name)


def resolve_loss(raw: Any, custom_objects: dict[str, Any]) -> Any:
    """A Keras 3 Loss for one output. Raises LookupError(name) for an unknown name."""
    if isinstance(raw, keras.losses.Loss):
        return raw
    if isinstance(raw, str):
        if raw.lower() in _AUTO_CE:
            return raw  # compile() picks binary/sparse/categorical from the shapes
        if raw in custom_objects:
            return resolve_loss(custom_objects[raw], custom_objects)
        try:
            obj = keras.losses.get(raw)
        except (ValueError, TypeError):
            obj = None
        if obj is None:
            raise LookupError(raw)
        return obj if isinstance(obj, keras.losses.Loss) else _wrap_function(obj, raw)
    if isinstance(raw, dict):
        return _from_config(raw, custom_objects)
    if isinstance(raw, type):
        return raw()
    if callable(raw):
        return _wrap_function(raw, getattr(raw, "__name__", "custom_loss"))
    raise ValueError(f"unrecognised loss configuration {raw!r}")


def _from_config(raw: dict, custom_objects: dict[str, Any]) -> Any:
    class_name = raw.get("class_name")
    if "module" in raw or class_name == "function":
        obj = keras.saving.deserialize_keras_object(raw, custom_objects=custom_objects or None)
        return resolve_loss(obj, custom_objects)
    cfg = copy.deepcopy(raw.get("config") or {})
    if not isinstance(cfg, dict):
        raise ValueError(f"loss config of {class_name!r} is not a mapping")
    cfg.pop("fn", None)
    if "reduction" in cfg:
        cfg["reduction"] = _KERAS2_REDUCTIONS.get(cfg["reduction"], cfg["reduction"])
    cls = custom_objects.get(class_name) or getattr(keras.losses, str(class_name), None)
    if cls is None:
        raise LookupError(class_name)
    if isinstance(cls, type):
        try:
            return cls.from_config(cfg) if hasattr(cls, "from_config") else cls(**cfg)
        except TypeError:
            cfg.pop("name", None)
            return cls(**cfg)
    return resolve_loss(cls, custom_objects)
