"""Turn a saved loss configuration (Keras 3 or tf.keras 2.x dialect) into a Keras 3 Loss object, and a
Keras Loss object into the reference's LossSpec.

Accepted: strings ("mse", "binary_crossentropy", class names), Keras 3 serialized objects
({"module", "class_name", "config"}), tf.keras Loss configs ({"class_name", "config": {"reduction":
"auto", "fn": ...}}), callables (functions, Loss classes/instances).
The Keras-object -> reference LossSpec mapping lives in losscheck/loading/lossspec.py.
"""

from __future__ import annotations

import copy
from typing import Any

from losscheck._tf import keras
from losscheck.core.taxonomy import AUTO_CROSSENTROPY, KERAS2_ALIASES

try:  # private, but stable since Keras 3.0; the wrapper compile() puts around every function loss
    from keras.src.losses.losses import LossFunctionWrapper
except ImportError:  # pragma: no cover
    LossFunctionWrapper = None  # type: ignore[assignment,misc]

_KERAS2_REDUCTIONS = {"auto": "sum_over_batch_size", "sum_over_batch_size": "sum_over_batch_size",
                      None: "sum_over_batch_size", "sum": "sum", "none": "none", "mean": "mean",
                      "mean_with_sample_weight": "mean_with_sample_weight"}
_AUTO_CE = AUTO_CROSSENTROPY
_KERAS2_ALIASES = KERAS2_ALIASES


def _wrap_function(fn, name: str):
    return LossFunctionWrapper(fn, name=name)


def resolve_loss(raw: Any, custom_objects: dict[str, Any]) -> Any:
    """A Keras 3 Loss for one output. Raises LookupError(name) for an unknown name."""
    if isinstance(raw, keras.losses.Loss):
        return raw
    if isinstance(raw, str):
        if raw.lower() in _AUTO_CE:
            return raw  # compile() picks binary/sparse/categorical from the shapes
        for key in (raw, raw.split(">")[-1]):  # tf.keras registers custom objects as "package>Name"
            if key in custom_objects:
                return resolve_loss(custom_objects[key], custom_objects)
        try:
            obj = keras.losses.get(_KERAS2_ALIASES.get(raw, raw))
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


def _lookup(name: str, custom_objects: dict[str, Any]) -> Any:
    """A loss class or function by name: custom objects first (also under a tf.keras 'Package>Name'
    registration), then Keras's own losses."""
    for key in (name, name.split(">")[-1]):
        if key in custom_objects:
            return custom_objects[key]
    short = name.split(">")[-1]
    obj = getattr(keras.losses, short, None)
    if obj is not None and (isinstance(obj, type) and issubclass(obj, keras.losses.Loss) or callable(obj)):
        return obj
    return None


def _accepted(cls: type, cfg: dict[str, Any]) -> dict[str, Any]:
    """The part of a saved config the Keras 3 class accepts (tf.keras configs carry extra keys)."""
    import inspect

    try:
        params = inspect.signature(cls).parameters
    except (TypeError, ValueError):
        return cfg
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return cfg
    return {k: v for k, v in cfg.items() if k in params}


_NUMBER_KEYS = {"label_smoothing", "delta", "alpha", "gamma", "q", "margin", "beta"}
_BOOL_KEYS = {"from_logits", "apply_class_balancing", "remove_diagonal"}


def _check_builtin_config(class_name: str, cfg: dict[str, Any]) -> None:
    """A damaged config of a built-in loss (a dict where a number belongs, ...) would build a loss that
    fails only in the middle of a run: refuse it here, naming the key."""
    def bad(key: str, value: Any) -> None:
        raise ValueError(f"{class_name} has {key}={value!r:.60}, not a valid value")

    for key, value in cfg.items():
        if key in _NUMBER_KEYS and (isinstance(value, bool) or not isinstance(value, (int, float))):
            bad(key, value)
        elif key in _BOOL_KEYS and not isinstance(value, bool):
            bad(key, value)
        elif key in ("name", "reduction") and value is not None and not isinstance(value, str):
            bad(key, value)
        elif key == "ignore_class" and value is not None and (isinstance(value, bool) or not isinstance(value, int)):
            bad(key, value)
        elif key == "axis" and value is not None and not (
                isinstance(value, int) and not isinstance(value, bool)
                or isinstance(value, list) and all(isinstance(a, int) and not isinstance(a, bool) for a in value)):
            bad(key, value)


def _from_config(raw: dict, custom_objects: dict[str, Any]) -> Any:
    class_name = raw.get("class_name")
    if not isinstance(class_name, str):
        raise ValueError(f"loss configuration without a class name: {raw!r:.100}")
    inner = raw.get("config")
    if isinstance(inner, dict) and hasattr(keras.losses, class_name.split(">")[-1]) \
            and class_name.split(">")[-1] not in custom_objects:
        _check_builtin_config(class_name, inner)
    if "module" in raw or class_name == "function":
        objects = dict(custom_objects)
        for registered in (raw.get("registered_name"), raw.get("config")):  # "Package>Name" -> the user's Name
            if isinstance(registered, str) and ">" in registered and registered.split(">")[-1] in objects:
                objects.setdefault(registered, objects[registered.split(">")[-1]])
        obj = keras.saving.deserialize_keras_object(raw, custom_objects=objects or None)
        return resolve_loss(obj, custom_objects)
    cfg = copy.deepcopy(raw.get("config") or {})
    if not isinstance(cfg, dict):
        raise ValueError(f"loss config of {class_name!r} is not a mapping")
    fn = cfg.pop("fn", None)
    if "reduction" in cfg:
        red = cfg["reduction"]
        cfg["reduction"] = _KERAS2_REDUCTIONS.get(red.lower() if isinstance(red, str) else red, red)
    cls = _lookup(class_name, custom_objects)
    if cls is None and class_name.split(">")[-1] == "LossFunctionWrapper" and isinstance(fn, str):
        # a tf.keras LossFunctionWrapper around a (custom) function: rebuild the same wrapper
        func = _lookup(fn, custom_objects)
        if func is None:
            raise LookupError(fn)
        name = cfg.pop("name", None) or fn
        reduction = cfg.pop("reduction", "sum_over_batch_size")
        return LossFunctionWrapper(func, name=name, reduction=reduction, **cfg)
    if cls is None:
        raise LookupError(class_name)
    if isinstance(cls, type):
        try:
            return cls.from_config(cfg) if hasattr(cls, "from_config") else cls(**cfg)
        except TypeError:
            cfg = _accepted(cls, cfg)
            try:
                return cls(**cfg)
            except TypeError:
                cfg.pop("name", None)
                return cls(**cfg)
    return resolve_loss(cls, custom_objects)
