"""Keras loss object -> the reference's LossSpec (kind, reduction, options) and a short display form."""

from __future__ import annotations

from typing import Any

from losscheck._tf import keras
from losscheck.loading.losses import LossFunctionWrapper
from losscheck.reference.formulas import supported
from losscheck.reference.specs import LossSpec


def _builtin_kind(loss: Any) -> str | None:
    fn = getattr(loss, "fn", None)
    if fn is None or LossFunctionWrapper is None or not isinstance(loss, LossFunctionWrapper):
        return None
    if not str(getattr(fn, "__module__", "")).startswith("keras.src.losses"):
        return None
    name = getattr(fn, "__name__", "")
    return name if supported(name) else None


def loss_spec(loss: Any) -> LossSpec:
    """The reference's view of a compiled loss. kind "custom": values come from the loss's own call."""
    if isinstance(loss, str):
        return LossSpec(kind="custom", display=loss)
    reduction = getattr(loss, "reduction", "sum_over_batch_size") or "none"
    kind = _builtin_kind(loss)
    options = dict(getattr(loss, "_fn_kwargs", {}) or {}) if kind else {}
    return LossSpec(kind=kind or "custom", reduction=str(reduction), options=options, display=describe_loss(loss))


def describe_loss(loss: Any) -> str:
    """Short human form: 'mse', 'BinaryCrossentropy(from_logits=True)', 'my_loss (custom)'."""
    if loss is None:
        return "none"
    if isinstance(loss, str):
        return loss
    fn = getattr(loss, "fn", None)
    kwargs = {k: v for k, v in (getattr(loss, "_fn_kwargs", {}) or {}).items()}
    cls = type(loss).__name__
    if cls == "LossFunctionWrapper":
        base = getattr(loss, "name", None) or getattr(fn, "__name__", "loss")
    else:
        base = cls
    defaults = {"from_logits": False, "label_smoothing": 0.0, "axis": -1, "ignore_class": None,
                "delta": 1.0, "apply_class_balancing": False, "alpha": 0.25, "gamma": 2.0}
    shown = {k: v for k, v in kwargs.items() if defaults.get(k, object()) != v}
    red = getattr(loss, "reduction", "sum_over_batch_size")
    if red != "sum_over_batch_size":
        shown["reduction"] = red
    custom = "" if _builtin_kind(loss) or cls in dir(keras.losses) else " (custom)"
    args = ", ".join(f"{k}={v!r}" for k, v in shown.items())
    return f"{base}({args}){custom}" if args else f"{base}{custom}"
