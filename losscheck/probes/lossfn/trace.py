"""The reduction trace: for each output, the shape and operation of every step from the element-wise
values to the reported loss, with the value after each step (averaged over the data as Keras averages
batches: weighted by batch size). Answers "is the batch loss a sum?" and "how are the classes combined?"
by reading it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from losscheck.core.formatting import plural
from losscheck.core.taxonomy import DISTRIBUTION_KINDS
from losscheck.probes.lossfn.outputs import OutputLoss, feature_axis_mismatch, loss_name
from losscheck.reference import EpochMean
from losscheck.reference.reduction import loss_values, match_rank, reduce_weighted, tracked_value
from losscheck.reference.specs import ELEMENTWISE_LAST_AXIS_MEAN

ELEMENT_OPS = {
    "mean_squared_error": "(y_pred - y_true)^2",
    "mean_absolute_error": "|y_pred - y_true|",
    "mean_absolute_percentage_error": "100 |y_true - y_pred| / |y_true|",
    "mean_squared_logarithmic_error": "(log(y_pred + 1) - log(y_true + 1))^2",
    "huber": "huber(y_pred - y_true)",
    "log_cosh": "log(cosh(y_pred - y_true))",
    "binary_crossentropy": "-[y log p + (1 - y) log(1 - p)]",
    "binary_focal_crossentropy": "(1 - p_t)^gamma * binary crossentropy",
    "poisson": "y_pred - y_true log(y_pred)",
    "hinge": "max(1 - y_true y_pred, 0)",
    "squared_hinge": "max(1 - y_true y_pred, 0)^2",
}


@dataclass
class Step:
    step: str
    operation: str
    shape: tuple[int, ...] | None = None
    mean: EpochMean = field(default_factory=EpochMean)

    def as_dict(self) -> dict[str, Any]:
        return {"step": self.step, "operation": self.operation,
                "shape": None if self.shape is None else list(self.shape), "value": self.mean.value}


def _reduction_text(reduction: str, values_shape: tuple[int, ...], weighted: bool) -> str:
    size = int(np.prod(values_shape)) if values_shape else 1
    if not values_shape:
        return "scalar returned as it is (Keras skips the reduction)"
    if reduction in ("sum_over_batch_size", "mean"):
        return f"sum / {size} values = mean over the batch" + (" (and positions)" if len(values_shape) > 1 else "")
    if reduction == "sum":
        return "sum over the batch (reduction='sum': NOT divided by the batch size)"
    if reduction == "mean_with_sample_weight":
        return "sum / sum of weights" if weighted else f"sum / {size} values"
    return "mean of the unreduced values (reduction='none'; what the tracker records)"


class OutputTrace:
    def __init__(self, ol: OutputLoss) -> None:
        self.ol = ol
        self.steps: dict[str, Step] = {}
        self.elementwise = (ol.kind in ELEMENTWISE_LAST_AXIS_MEAN and ol.option("axis", -1) == -1)
        self.masked = False  # a Keras mask (or the loss's own) was seen on this output

    def _step(self, key: str, operation: str, shape, value: float, n: int) -> None:
        st = self.steps.get(key)
        if st is None:
            st = self.steps[key] = Step(key, operation, tuple(shape) if shape is not None else None)
        st.mean.add(value, n)

    def add(self, b) -> None:
        ol = self.ol
        i = ol.index
        y, p, lg, mask = b.y[i], b.outputs[i], b.logits[i], b.masks[i]
        self.masked = self.masked or mask is not None
        if ol.builtin:
            values = np.asarray(loss_values(ol.spec, y, p, lg), np.float64)
            if self.elementwise:
                t, q = match_rank(np.asarray(y), np.asarray(p))
                use_lg = lg is not None and np.shape(lg) == q.shape
                elem = loss_values(ol.spec, t[..., None], q[..., None], np.asarray(lg)[..., None] if use_lg else None)
                op = ELEMENT_OPS.get(ol.kind, f"{ol.kind} per element")
                if use_lg and "crossentropy" in ol.kind:
                    op += " (from the cached pre-activation logits)"
                self._step("element-wise values", op, q.shape, float(np.mean(elem)), b.n)
                last = q.shape[-1]
                red = f"mean over the last axis (axis -1, size {last})"
                axis = feature_axis_mismatch(ol)
                if axis is not None:
                    red += f": a spatial axis, the {ol.facts.shape[axis]} features are on axis {axis}"
            elif ol.kind in DISTRIBUTION_KINDS:
                red = f"per-sample values: sum over the class axis (axis -1, size {np.shape(p)[-1]})"
            elif ol.kind == "sparse_categorical_crossentropy":
                red = f"per-sample values: -log p[label] over the class axis (size {np.shape(p)[-1]})"
            else:
                red = f"per-sample values of {ol.kind}"
        else:
            if b.values[i] is None:
                return
            values = np.asarray(b.values[i], np.float64)
            red = f"{loss_name(ol.loss)}(y_true, y_pred) returns (custom)"
            if values.ndim == 0 or values.shape[0] != b.n:
                red += f": no batch axis, the batch has {plural(b.n, 'sample')}"
        self._step("loss function", red, values.shape, float(np.mean(values)) if values.size else 0.0, b.n)
        if (b.sample_weight is not None or mask is not None) and values.size:
            # mean of values x weights (the mask merged in as Keras merges it for this reduction)
            scaled = ol.spec.reduction in ("mean", "sum_over_batch_size")
            weighted = reduce_weighted(values, b.sample_weight, mask, "sum_over_batch_size" if scaled else "sum")
            value = tracked_value(weighted) / (1 if scaled or not np.ndim(values) else values.size)
            what = " and ".join(x for x, on in (("sample weights", b.sample_weight is not None),
                                                ("mask", mask is not None)) if on)
            self._step("weights", f"x {what}", values.shape, value, b.n)
        loss = b.output_losses.get(ol.name)
        if loss is None:
            return
        self._step("reduction", _reduction_text(ol.spec.reduction, values.shape, b.sample_weight is not None), (),
                   loss, b.n)
        self._step("loss weight", f"x loss weight {ol.weight:g}", (), ol.weight * loss, b.n)

    def as_dict(self) -> dict[str, Any]:
        return {"loss": self.ol.spec.label, "reduction": self.ol.spec.reduction,
                "steps": [s.as_dict() for s in self.steps.values()]}


class TraceObserver:
    def __init__(self, outputs: list[OutputLoss]) -> None:
        self.outputs = {ol.name: OutputTrace(ol) for ol in outputs}
        self.data_loss, self.reg, self.total = EpochMean(), EpochMean(), EpochMean()
        self.batch_size: int | None = None
        self.batches = 0

    def __call__(self, b) -> None:
        if self.batch_size is None:
            self.batch_size = b.n
        self.batches += 1
        for tr in self.outputs.values():
            try:
                tr.add(b)
            except Exception:  # noqa: BLE001 - a trace step that cannot be computed is left out, never fatal
                pass
        self.data_loss.add(b.data_loss, b.n)
        self.reg.add(b.regularization, b.n)
        self.total.add(b.total, b.n)

    def section(self, evaluate: float) -> dict[str, Any]:
        total = []
        if len(self.outputs) > 1:
            total.append({"step": "sum over outputs", "operation": "sum of loss weight x output loss",
                          "shape": [], "value": self.data_loss.value})
        total.append({"step": "penalties", "operation": "+ penalties (model.losses: regularizers, add_loss)",
                      "shape": [], "value": self.data_loss.value + self.reg.value})
        total.append({"step": "reported", "operation": "reported value (evaluate: batch means weighted by batch size)",
                      "shape": [], "value": evaluate})
        return {"batch_size": self.batch_size, "batches": self.batches,
                "outputs": {o: tr.as_dict() for o, tr in self.outputs.items()}, "total": total}
