"""Keras loss object -> the reference's LossSpec (kind, reduction, options) and a short display form."""

from __future__ import annotations

from typing import Any

from losscheck._tf import keras
from losscheck.core.taxonomy import AUTO_CROSSENTROPY as AUTO_CROSSENTROPY
from losscheck.loading.losses import LossFunctionWrapper
from losscheck.reference.formulas import supported
from losscheck.reference.specs import LossSpec


def _builtin_kind(loss: Any) -> str | None:
    """The keras.losses function name when `loss` runs a built-in formula through Keras's own
    LossFunctionWrapper.call (a subclass that overrides call() is custom)."""
    fn = getattr(loss, "fn", None)
    if fn is None or LossFunctionWrapper is None or not isinstance(loss, LossFunctionWrapper):
        return None
    if type(loss).call is not LossFunctionWrapper.call:
        return None
    if not str(getattr(fn, "__module__", "")).startswith("keras.src.losses"):
        return None
    name = getattr(fn, "__name__", "")
    return name if supported(name) else None


def _reduction(loss: Any) -> str:
    red = getattr(loss, "reduction", "sum_over_batch_size")
    return "none" if red is None else str(red)


def loss_spec(loss: Any) -> LossSpec:
    """The reference's view of a compiled loss. kind "custom": values come from the loss's own call().
    A "crossentropy"/"ce" string stays custom here (its kind depends on the shapes; see
    auto_crossentropy_spec)."""
    if isinstance(loss, str):
        return LossSpec(kind="custom", display=loss)
    kind = _builtin_kind(loss)
    options = dict(getattr(loss, "_fn_kwargs", {}) or {}) if kind else {}
    dtype = str(getattr(loss, "dtype", None) or "float32")
    return LossSpec(kind=kind or "custom", reduction=_reduction(loss), options=options,
                    display=describe_loss(loss), dtype=dtype)




def auto_crossentropy_kind(y_true_shape: tuple, y_pred_shape: tuple) -> str:
    """What compile() picks for loss="crossentropy"/"ce" (trainers/compile_utils.py get_loss and
    is_binary_or_sparse_categorical), from the symbolic shapes Keras sees: the batch dim is None."""
    t_shape = (None,) + tuple(y_true_shape[1:])
    p_shape = (None,) + tuple(y_pred_shape[1:])
    t_last, p_last = t_shape[-1], p_shape[-1]
    if p_last == 1:
        return "binary_crossentropy"
    if len(t_shape) < len(p_shape) or (t_last == 1 and p_last is not None and p_last > 1):
        return "sparse_categorical_crossentropy"
    return "categorical_crossentropy"


def auto_crossentropy_spec(name: str, y_true_shape: tuple, y_pred_shape: tuple) -> LossSpec:
    return LossSpec(kind=auto_crossentropy_kind(y_true_shape, y_pred_shape), display=name)


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
                "delta": 1.0, "apply_class_balancing": False, "alpha": 0.25, "gamma": 2.0, "q": 0.5,
                "beta": 0.5, "margin": 0.4, "remove_diagonal": True}
    shown = {k: v for k, v in kwargs.items() if defaults.get(k, object()) != v}
    red = getattr(loss, "reduction", "sum_over_batch_size")
    if red != "sum_over_batch_size":
        shown["reduction"] = red
    custom = "" if _builtin_kind(loss) or cls in dir(keras.losses) else " (custom)"
    args = ", ".join(f"{k}={v!r}" for k, v in shown.items())
    return f"{base}({args}){custom}" if args else f"{base}{custom}"
