"""Data against the model: input shapes, target shapes, label kinds. Data that does not fit the model
is refused before any pass, naming the input or output, what it expects and what it got."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from losscheck.core.errors import DataFileError
from losscheck.core.taxonomy import ONEHOT_KINDS, SAME_SHAPE_KINDS, SPARSE_KINDS, builtin_name

if TYPE_CHECKING:
    from losscheck.loading.data import Dataset


_SPARSE_FNS, _ONEHOT_FNS, _ELEMENTWISE_FNS = SPARSE_KINDS, ONEHOT_KINDS, SAME_SHAPE_KINDS


def _fmt(shape: Sequence[Any]) -> str:
    return "(" + ", ".join("None" if d is None else str(d) for d in shape) + ("," if len(shape) == 1 else "") + ")"


def _loss_fn_name(loss: Any) -> str | None:
    """The built-in Keras function behind a compiled loss, or None for custom losses."""
    if isinstance(loss, str):
        return builtin_name(loss)
    fn = getattr(loss, "fn", None)
    if fn is None or not str(getattr(fn, "__module__", "")).startswith("keras."):
        return None
    return getattr(fn, "__name__", None)


def _shape_fits(expected: Sequence[Any], got: Sequence[int]) -> bool:
    """Does an array of shape `got` (samples first) fit a Keras input of shape `expected` (batch first)?
    Keras also accepts a rank off by one when the extra axis has size 1."""
    exp, got = list(expected[1:]), list(got[1:])
    if len(got) == len(exp) + 1 and got[-1] == 1:
        got = got[:-1]
    elif len(exp) == len(got) + 1 and exp[-1] in (1, None):
        exp = exp[:-1]
    return len(exp) == len(got) and all(e is None or e == g for e, g in zip(exp, got, strict=False))


def _broadcastable(a: list[int | None], b: list[int | None]) -> bool:
    for x, y in zip(reversed(a), reversed(b), strict=False):
        if x is not None and y is not None and x != y and x != 1 and y != 1:
            return False
    return True


def _check_class_range(path: Path, key: str, name: str, arr: Any, classes: int, ignore: Any) -> None:
    """Class indices must lie in [0, classes) (TensorFlow fails mid-run otherwise). Read in chunks."""
    low, high = np.inf, -np.inf
    step = 1 << 20
    for start in range(0, int(arr.shape[0]), step):
        chunk = np.asarray(arr[start:start + step], dtype="float64").reshape(-1)
        finite = np.isfinite(chunk)
        if not finite.all():  # TensorFlow would cast NaN to a huge negative class index and fail
            per_row = max(chunk.size // max(min(step, int(arr.shape[0]) - start), 1), 1)
            first = start + int(np.argmin(finite)) // per_row
            bad = chunk[~finite][0]
            raise DataFileError(path, f"target {key!r} holds {bad} (sample {first}) where output {name!r} needs a "
                                f"class index 0..{classes - 1}", "fix or drop those labels")
        chunk = chunk[np.isfinite(chunk)]
        if ignore is not None:
            chunk = chunk[chunk != ignore]
        if chunk.size:
            low, high = min(low, float(chunk.min())), max(high, float(chunk.max()))
    if high >= classes or low < 0:
        bad = high if high >= classes else low
        raise DataFileError(path, f"target {key!r} holds class index {bad:g}, but output {name!r} has "
                            f"{classes} classes (indices 0..{classes - 1})",
                            "fix the labels, or check that this data belongs to this model")


def check_against_model(ds: Dataset, loaded: Any) -> None:
    """Refuse data that does not fit the model, naming the input/output, expected vs got. A model whose
    shapes cannot be read (subclassed, unbuilt) is not checked here; Keras's own error then applies."""
    try:
        _check_against_model(ds, loaded)
    except DataFileError:
        raise
    except Exception:  # noqa: BLE001 - a check that cannot run must not stop the run
        return


def _check_against_model(ds: Dataset, loaded: Any) -> None:
    model = getattr(loaded, "model", loaded)
    path = ds.path
    x_keys, y_keys = ds.keys
    inputs = list(getattr(model, "inputs", None) or [])
    if len(inputs) == len(ds.x):
        for key, name, t, arr in zip(x_keys, ds.input_names, inputs, ds.x, strict=False):
            expected = tuple(t.shape)
            if not _shape_fits(expected, arr.shape):
                want = _fmt(expected).replace("(None", "(n", 1)
                raise DataFileError(path, f"array {key!r} has shape {_fmt(arr.shape)}, but the model's input "
                                    f"{name!r} expects {want}", f"store {key!r} with shape {want}")
            want_dtype = str(getattr(t, "dtype", "") or "")
            if want_dtype.startswith(("int", "uint")) and np.dtype(arr.dtype).kind == "f":
                head = np.asarray(arr[: 1 << 16], dtype="float64")
                head = head[np.isfinite(head)]
                if head.size and np.any(head != np.round(head)):
                    raise DataFileError(path, f"array {key!r} holds fractional floats ({arr.dtype}), but the model's "
                                        f"input {name!r} expects integers ({want_dtype}): Keras would truncate them",
                                        f"store {key!r} as integer indices")
    outputs = list(getattr(model, "outputs", None) or [])
    losses = getattr(loaded, "losses", None) or {}
    if len(outputs) != len(ds.y):
        return
    for key, name, t, arr in zip(y_keys, ds.output_names, outputs, ds.y, strict=False):
        loss = losses.get(name)
        fn = _loss_fn_name(loss) if loss is not None else None
        if fn is None:
            continue
        out_shape = list(tuple(t.shape))
        y_shape = list(arr.shape)
        classes = out_shape[-1] if out_shape else None
        n = y_shape[0]
        if fn in _SPARSE_FNS:
            rank = len(out_shape)
            want = _fmt([n] + out_shape[1:-1])
            if len(y_shape) == rank and y_shape[-1] != 1 and y_shape[-1] == classes:
                raise DataFileError(path, f"target {key!r} has shape {_fmt(y_shape)}, which looks one-hot, but output "
                                    f"{name!r} uses {fn}, which expects integer class indices of shape {want}",
                                    "store argmax(y, axis=-1), or pass --loss categorical_crossentropy if the model "
                                    "is trained on one-hot targets")
            if len(y_shape) not in (rank - 1, rank) or (len(y_shape) == rank and y_shape[-1] != 1):
                raise DataFileError(path, f"target {key!r} has shape {_fmt(y_shape)}, but output {name!r} has shape "
                                    f"{_fmt(out_shape)} and {fn} expects class indices of shape {want}",
                                    "store the class index of every sample")
            if isinstance(classes, int) and classes > 1:
                _check_class_range(path, key, name, arr, classes, getattr(loss, "_fn_kwargs", {}).get("ignore_class"))
            continue
        if fn in _ONEHOT_FNS and classes not in (None, 1):
            sparse_like = len(y_shape) == len(out_shape) - 1 or (len(y_shape) == len(out_shape) and y_shape[-1] == 1)
            if sparse_like:
                raise DataFileError(path, f"target {key!r} has shape {_fmt(y_shape)}, which looks like class indices, "
                                    f"but output {name!r} uses {fn}, which expects one-hot targets of shape "
                                    f"{_fmt([n] + out_shape[1:])}", "one-hot encode the targets, or pass --loss "
                                    "sparse_categorical_crossentropy if the model is trained on class indices")
        if fn in _ELEMENTWISE_FNS:
            yt, yp = list(y_shape), list(out_shape)
            yp[0] = n
            if len(yt) == len(yp) + 1 and yt[-1] == 1:
                yt = yt[:-1]
            elif len(yp) == len(yt) + 1 and yp[-1] == 1:
                yp = yp[:-1]
            elif len(yp) == len(yt) + 1 and len(yt) == 1:
                yt = yt + [1]
            if len(yt) != len(yp) or not _broadcastable(yt, yp):
                raise DataFileError(path, f"target {key!r} has shape {_fmt(y_shape)}, which does not fit output "
                                    f"{name!r} of shape {_fmt(out_shape)} for {fn}",
                                    f"store {key!r} with shape {_fmt([n] + out_shape[1:])}")
