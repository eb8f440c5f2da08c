"""TensorFlow's InvalidArgumentError during a pass, as the one-line DataFileError that names the data
(or the user's own code, when it failed)."""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from typing import Any

from losscheck import usercode
from losscheck._tf import invalid_argument_errors
from losscheck.core.errors import DataFileError
from losscheck.loading.data import Dataset
from losscheck.loading.pipelines import PipelineDataset


def _keras_reason(exc: BaseException) -> str:
    """The informative line of a TensorFlow runtime error (not 'Graph execution error:')."""
    lines = [ln.strip() for ln in str(getattr(exc, "message", exc)).splitlines() if ln.strip()]
    useful = [ln for ln in lines
              if "Graph execution error" not in ln and not ln.startswith(("Detected at node", "File "))]
    first = (useful or lines or [type(exc).__name__])[0]
    return re.sub(r"\{\{function_node [^}]*\}\}\s*", "", first)[:300]


def data_errors(method: Callable) -> Callable:
    """Turn TensorFlow's InvalidArgumentError during a pass (data Keras itself cannot compute a loss on,
    e.g. sample weights that do not broadcast to the loss's shape) into a one-line DataFileError."""

    @functools.wraps(method)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return method(*args, **kwargs)
        except invalid_argument_errors() as exc:
            theirs = usercode.explain(exc)  # the user's loss or layer failed at run time, not the data
            if theirs is not None:
                raise theirs from exc
            data = kwargs.get("data") or next(
                (a for a in args if isinstance(a, (Dataset, PipelineDataset))),
                getattr(args[0], "data", None) if args else None)
            reason = _keras_reason(exc)
            path = getattr(data, "path", "data file")
            sw = getattr(data, "sample_weight", None)
            if sw is not None and hasattr(sw, "shape") and "ncompatible shapes" in reason:
                m = re.search(r"\[(\d+(?:,\d+)+)\]", reason)  # the per-element loss shape of one batch
                dims = m.group(1).split(",")[1:] if m else []
                ones = "(n" + ", 1" * len(dims) + ")"
                full = "(n" + "".join(f", {d}" for d in dims) + ")"
                hint = (f"store sample_weight as {ones} or {full}" if dims
                        else "store sample_weight with the loss's per-element shape")
                raise DataFileError(path, f"Keras cannot apply sample_weight of shape {tuple(sw.shape)} to the loss "
                                    f"({reason}): Keras 3 does not expand (n,) weights to a per-element loss",
                                    hint) from exc
            names = usercode.loss_names()
            if names:  # TensorFlow's run-time error does not say which op failed: it may be their loss
                raise DataFileError(path, f"Keras cannot compute the loss on this data ({reason})",
                                    f"check that x, y and sample_weight fit the model, and your own {names}, "
                                    "which computes it") from exc
            raise DataFileError(path, f"Keras cannot compute the loss on this data ({reason})",
                                "check that x, y and sample_weight fit the model's inputs, outputs and loss") from exc

    return wrapper
