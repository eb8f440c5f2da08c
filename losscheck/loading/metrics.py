"""`metrics` / `weighted_metrics` of a file's compile configuration (Keras 3 .keras, Keras 3 or tf.keras
.h5 training_config) as objects `model.compile` accepts, keeping their structure (a list, a list per
output, a dict per output name).

Strings stay strings (compile resolves "accuracy" from the shapes, as on load); serialized objects are
rebuilt (Keras 3: deserialize_keras_object in safe mode; tf.keras: class by name from the custom objects
or keras.metrics, with the config keys the class accepts). A metric that cannot be rebuilt is left out
with a note: metrics never stop the loss analysis.
"""

from __future__ import annotations

import copy
import inspect
from typing import Any

from losscheck._tf import keras

_AUTO = ("accuracy", "acc", "crossentropy", "ce")
_KERAS2_ALIASES = {"kullback_leibler_divergence": "kl_divergence", "logcosh": "log_cosh",
                   "cosine_proximity": "cosine_similarity"}


def _is_object(d: Any) -> bool:
    return isinstance(d, dict) and "class_name" in d


def _from_keras2(raw: dict, custom_objects: dict[str, Any]) -> Any:
    name = str(raw["class_name"]).split(">")[-1]
    cfg = copy.deepcopy(raw.get("config") or {})
    cls = custom_objects.get(raw["class_name"]) or custom_objects.get(name) or getattr(keras.metrics, name, None)
    if name == "MeanMetricWrapper" and isinstance(cfg.get("fn"), str):
        fn_name = cfg["fn"]
        fn = custom_objects.get(fn_name) or keras.metrics.get(_KERAS2_ALIASES.get(fn_name, fn_name))
        if isinstance(fn, type):
            fn = fn()
        if isinstance(fn, keras.metrics.Metric):  # Keras 3 maps a built-in function name to a Metric
            fn.name = cfg.get("name") or fn_name
            return fn
        return keras.metrics.MeanMetricWrapper(fn, name=cfg.get("name") or fn_name)
    if not isinstance(cls, type):
        raise LookupError(raw["class_name"])
    try:
        params = inspect.signature(cls).parameters
        if not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
            cfg = {k: v for k, v in cfg.items() if k in params}
    except (TypeError, ValueError):
        pass
    return cls(**cfg)


def resolve_metric(raw: Any, custom_objects: dict[str, Any], unsafe: bool = False) -> Any:
    """One metric as compile() accepts it. Raises LookupError/ValueError/TypeError when it cannot be."""
    if isinstance(raw, str):
        key = raw.split(">")[-1]
        if raw in custom_objects or key in custom_objects:
            return custom_objects.get(raw, custom_objects.get(key))
        if raw.lower() in _AUTO:
            return raw
        name = _KERAS2_ALIASES.get(raw, raw)
        keras.metrics.get(name)  # raises ValueError for an unknown name
        return name
    if _is_object(raw):
        if "module" in raw or raw.get("class_name") == "function":
            return keras.saving.deserialize_keras_object(raw, custom_objects=custom_objects or None,
                                                         safe_mode=not unsafe)
        return _from_keras2(raw, custom_objects)
    if callable(raw):
        return raw
    raise ValueError(f"unrecognised metric configuration {raw!r:.80}")


def resolve_metrics(structure: Any, custom_objects: dict[str, Any], notes: list[str], what: str = "metrics",
                    unsafe: bool = False) -> Any:
    """The structure with every metric resolved; those that cannot be are dropped with a note."""
    if structure is None:
        return None

    def one(raw: Any) -> Any:
        try:
            return resolve_metric(raw, custom_objects, unsafe)
        except Exception as exc:  # noqa: BLE001 - a metric that cannot be rebuilt is left out, with a note
            label = raw if isinstance(raw, str) else (raw.get("class_name") if isinstance(raw, dict) else repr(raw))
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:120]
            notes.append(f"the file's {what} entry {label!r} could not be rebuilt ({type(exc).__name__}: {first}); "
                         "it is left out (pass its definition with --custom-objects to measure it)")
            return None

    def walk(node: Any) -> Any:
        if isinstance(node, (list, tuple)):
            items = [walk(n) for n in node]
            return [i for i in items if i is not None or isinstance(node, tuple)]
        if isinstance(node, dict) and not _is_object(node):
            return {k: walk(v) for k, v in node.items()}
        return one(node)

    out = walk(structure)
    return out if out not in ([], {}) else None
