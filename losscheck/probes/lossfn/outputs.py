"""The outputs with a compiled loss: the Keras loss object, what it is, what the graph says about the
output, and probe tensors of the output's real shapes."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from losscheck.core.taxonomy import (
    BINARY_KINDS,
    CLASS_PROBABILITY_KINDS,
    CROSSENTROPY_KINDS,
    NON_NEGATIVE_KINDS,
    ONEHOT_KINDS,
    POSITIVE_PREDICTION_KINDS,
)
from losscheck.measurements.lossfn import OutputLossRecord
from losscheck.probes.lossfn.graph import OutputFacts, output_facts
from losscheck.reference.formulas import softmax
from losscheck.reference.specs import ELEMENTWISE_LAST_AXIS_MEAN, LossSpec

PROBE_POOL = 32
#: Losses that reduce over (or read their classes from) axis -1 of each element.
AXIS_KINDS = ELEMENTWISE_LAST_AXIS_MEAN | CROSSENTROPY_KINDS | {"kl_divergence", "cosine_similarity",
                                                                 "categorical_hinge"}


@dataclass
class OutputLoss:
    """One output with a compiled loss."""

    name: str
    index: int
    loss: Any  # Keras Loss object, or a string Keras resolves at compile time ("crossentropy")
    spec: LossSpec
    weight: float
    facts: OutputFacts

    @property
    def kind(self) -> str:
        return self.spec.kind

    @property
    def builtin(self) -> bool:
        return self.spec.kind != "custom"

    def option(self, name: str, default: Any = None) -> Any:
        opts = getattr(self.loss, "_fn_kwargs", None) or {}
        return opts.get(name, self.spec.option(name, default))

    def record(self) -> OutputLossRecord:
        """What the rules read about this output (no rank probe or data measurement yet)."""
        f = self.facts
        return OutputLossRecord(
            name=self.name, index=self.index, kind=self.kind, label=self.spec.label, loss_name=loss_name(self.loss),
            reduction=self.spec.reduction, weight=self.weight, shape=tuple(f.shape), activation=f.activation,
            activation_layer=f.activation_layer, channels_axis=f.channels_axis, channels_reason=f.channels_reason,
            from_logits=bool(self.option("from_logits", False)),
            label_smoothing=float(self.option("label_smoothing", 0.0) or 0.0),
            mismatched_axis=feature_axis_mismatch(self))


def output_losses(loaded) -> list[OutputLoss]:
    facts = output_facts(loaded.model, list(loaded.output_names))
    specs = loaded.specs
    out = []
    for f in facts:
        loss = loaded.losses.get(f.name)
        spec = specs.get(f.name)
        if loss is None or spec is None:
            continue
        out.append(OutputLoss(f.name, f.index, loss, spec, float(loaded.loss_weights.get(f.name, 1.0)), f))
    return out


def feature_axis_mismatch(ol: OutputLoss) -> int | None:
    """The channels axis when the loss reduces over a different (last) one; None when all is well."""
    f = ol.facts
    rank = len(f.shape)
    if rank < 3 or ol.kind not in AXIS_KINDS or f.channels_axis is None:
        return None
    loss_axis = ol.option("axis", -1)
    if not isinstance(loss_axis, int):
        return None
    if loss_axis % rank == f.channels_axis % rank or f.channels_axis % rank == rank - 1:
        return None
    return f.channels_axis


def loss_function(loss: Any):
    """The Python function behind a Keras loss (the user's fn of a LossFunctionWrapper, or the call
    method of a Loss subclass), for names and source."""
    fn = getattr(loss, "fn", None)
    if fn is not None:
        return fn
    call = getattr(type(loss), "call", None)
    return call


def loss_name(loss: Any) -> str:
    if isinstance(loss, str):
        return loss
    fn = getattr(loss, "fn", None)
    if fn is not None:
        return str(getattr(fn, "__name__", None) or getattr(loss, "name", "loss"))
    return type(loss).__name__


def concrete_shape(shape: tuple, batch: int, fill: int = 4) -> tuple[int, ...]:
    return (batch,) + tuple(fill if d is None else int(d) for d in shape[1:])



def synthetic_pool(ol: OutputLoss, y_shape: tuple | None = None, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(y_true, y_pred) pools of PROBE_POOL distinct samples shaped like this output (and like its
    targets when y_shape, the target shape without the batch axis, is known)."""
    if not ol.facts.shape:
        raise ValueError(f"the shape of output {ol.name!r} is not known without data")
    rng = np.random.default_rng(seed)
    p_shape = concrete_shape(ol.facts.shape, PROBE_POOL)
    kind = ol.kind
    from_logits = bool(ol.option("from_logits", False))
    act = ol.facts.activation
    z = rng.normal(size=p_shape)
    if act == "softmax" or (kind in CLASS_PROBABILITY_KINDS and not from_logits):
        p = softmax(z)
    elif act == "sigmoid" or (kind in CROSSENTROPY_KINDS and not from_logits):
        p = 1.0 / (1.0 + np.exp(-z))
    elif kind == "custom" or kind in POSITIVE_PREDICTION_KINDS:
        p = rng.uniform(0.1, 0.9, size=p_shape)
    else:
        p = z
    n_classes = p_shape[-1]
    if kind == "sparse_categorical_crossentropy":
        t_shape = (PROBE_POOL,) + tuple(y_shape) if y_shape is not None else p_shape[:-1]
        t = rng.integers(0, max(n_classes, 1), size=t_shape).astype(np.float64)
    else:
        t_shape = (PROBE_POOL,) + tuple(y_shape) if y_shape is not None else p_shape
        if kind in ONEHOT_KINDS and \
                t_shape == p_shape:
            t = np.eye(n_classes)[rng.integers(0, n_classes, size=p_shape[:-1])]
        elif kind in BINARY_KINDS:
            t = rng.integers(0, 2, size=t_shape).astype(np.float64)
        elif kind == "custom" or kind in NON_NEGATIVE_KINDS:
            t = rng.uniform(0.1, 0.9, size=t_shape)
        else:
            t = rng.normal(size=t_shape)
    return t.astype("float32"), p.astype("float32")


def data_pool(y: np.ndarray, p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """PROBE_POOL samples from real targets/outputs (rows repeated when there are fewer)."""
    idx = np.arange(PROBE_POOL) % max(len(y), 1)
    return np.asarray(y)[idx].astype("float32"), np.asarray(p)[idx].astype("float32")


