"""In-memory arrays (numpy, tensors, lists; a dict of arrays named as in a data file) as the same
`Dataset` a .npz file gives, validated the same way; `columns` maps one value to the model's inputs or
outputs (a single array, a list/tuple in order, or a dict keyed by name), as Keras's fit accepts it."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from losscheck.core.errors import UsageError
from losscheck.loading.data import Dataset, _validate, dataset_from_arrays
from losscheck.loading.model_checks import check_against_model


def columns(value: Any, names: Sequence[str], what: str, where: str) -> list[Any]:
    """One array per name from a single array, a list/tuple (positional) or a dict (by name)."""
    names = list(names)
    if isinstance(value, dict):
        if len(names) == 1 and len(value) == 1:
            return [next(iter(value.values()))]
        missing = [n for n in names if n not in value]
        if missing:
            raise UsageError(f"{where}: {what} is a dict with keys {sorted(map(str, value))}, but the model's "
                             f"{what}s are named {names}; key it by those names")
        return [value[n] for n in names]
    if isinstance(value, (list, tuple)) and len(names) > 1:
        if len(value) != len(names):
            raise UsageError(f"{where}: {what} has {len(value)} entries but the model has {len(names)} {what}s "
                             f"({names}); give one array per {what}, in order, or a dict keyed by name")
        return list(value)
    if isinstance(value, (list, tuple)) and len(value) == 1 and hasattr(value[0], "shape"):
        return [value[0]]
    return [value]


def as_numpy(value: Any) -> np.ndarray:
    return value.numpy() if hasattr(value, "numpy") else np.asarray(value)


def _keys(prefix: str, names: Sequence[str]) -> list[str]:
    """The data-file names of in-memory arrays (for messages): `x`, or `x_<name>` for several."""
    return [prefix] if len(names) == 1 else [f"{prefix}_{n}" for n in names]


def arrays_dataset(x: Any, y: Any, sample_weight: Any, input_names: Sequence[str],
                   output_names: Sequence[str], loaded: Any = None, label: str = "<arrays>") -> Dataset:
    """In-memory arrays (numpy, tensors, lists) as the Dataset a .npz gives, validated the same way."""
    if x is None or y is None:
        raise UsageError(f"{label}: pass both x and y (or data=(x, y[, sample_weight]))")
    xs = [as_numpy(a) for a in columns(x, input_names, "input", label)]
    ys = [as_numpy(a) for a in columns(y, output_names, "output", label)]
    sw = None if sample_weight is None else as_numpy(sample_weight)
    if isinstance(sample_weight, (dict, list, tuple)) and len(output_names) > 1:
        raise UsageError(f"{label}: one sample_weight array for all outputs is supported, not one per output")
    ds = Dataset(Path(label), xs, ys, sw, list(input_names), list(output_names), streamed=False)
    ds.keys = (_keys("x", input_names), _keys("y", output_names))
    named = dict(zip(ds.keys[0], xs, strict=True)) | dict(zip(ds.keys[1], ys, strict=True))
    if sw is not None:
        named["sample_weight"] = sw
    _validate(ds, named)
    if loaded is not None:
        check_against_model(ds, loaded)
    return ds


def dict_dataset(arrays: dict[str, Any], input_names: Sequence[str], output_names: Sequence[str],
                 loaded: Any = None, label: str = "<dict of arrays>") -> Dataset:
    """A dict of arrays named as in a data file (`x`, `y`, `x_<input>`, `y_<output>`, positional
    `x_0`..., optional `sample_weight`), as the Dataset that file would give."""
    arrays = {str(k): as_numpy(v) for k, v in arrays.items()}
    return dataset_from_arrays(arrays, input_names, output_names, Path(label), loaded, noun="key", fix="name them")

