"""The model's own compiled metrics on the inference pass: `KerasMetrics` updates its CompileMetrics
inside the pass, exactly as `evaluate`'s test_step updates them (`compute_metrics` ->
`_compile_metrics.update_state(y, y_pred, sample_weight)`); its variables are saved before the pass
and restored after it."""

from __future__ import annotations

from typing import Any

import numpy as np


class KerasMetrics:
    """The model's CompileMetrics around one pass: built (as evaluate builds it), state saved and reset
    before, values read and state restored after."""

    def __init__(self, model: Any) -> None:
        self.model = model
        self.cm = getattr(model, "_compile_metrics", None)
        self.snapshot: list[tuple[Any, np.ndarray]] = []
        self.error: str | None = None

    def begin(self, x: Any, y: Any, sw: Any) -> Any:
        """Build and reset; returns the CompileMetrics to update in the step, or None (no metrics, or
        they cannot be built for this data: `error` says why)."""
        cm = self.cm
        if cm is None:
            return None
        try:
            if not cm.built:
                x = _symbolic_strings(x)
                self.model._symbolic_build(data_batch=(x, y) if sw is None else (x, y, sw))
            self.snapshot = [(v, np.array(v)) for v in cm.variables]
            cm.reset_state()
        except Exception as exc:  # noqa: BLE001 - a metric Keras cannot build must not stop the loss analysis
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
            self.error = f"the compiled metrics cannot be built for this data ({type(exc).__name__}: {first})"
            return None
        return cm

    def end(self) -> dict[str, Any]:
        """{name: float or list} as evaluate(return_dict=True) gives them; restores the saved state."""
        cm = self.cm
        if cm is None or not cm.built or self.error is not None:
            return {}  # a metric that failed to build may be half built: its zeros are no values
        try:
            return {k: _plain(v) for k, v in cm.result().items()}
        finally:
            for var, value in self.snapshot:
                var.assign(value)


def _symbolic_strings(x: Any) -> Any:
    """String inputs (numpy bytes/str/object arrays, as a pipeline's string tensors arrive) as symbolic
    string tensors: Keras's symbolic build reads only shape and dtype, and has no dtype for numpy's."""
    from losscheck._tf import keras

    def one(v: Any) -> Any:
        if isinstance(v, np.ndarray) and v.dtype.kind in "OSU":
            return keras.KerasTensor(v.shape, "string")
        return v

    if isinstance(x, (list, tuple)):
        return type(x)(one(v) for v in x)
    if isinstance(x, dict):
        return {k: one(v) for k, v in x.items()}
    return one(x)


def _plain(value: Any) -> Any:
    arr = np.asarray(value, dtype=np.float64)
    return float(arr) if arr.shape == () else arr.tolist()

