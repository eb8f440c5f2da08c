"""What the model graph says about each output: its shape, its final activation, and which axis holds
the features. Read from the Keras functional graph (KerasTensor histories), at any nesting depth."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from losscheck.core.formatting import shape_text

#: Layers that only move or copy values: the activation and layout of their input carry through.
_PASS_THROUGH = ("Identity", "Dropout", "SpatialDropout1D", "SpatialDropout2D", "SpatialDropout3D", "GaussianNoise",
                 "GaussianDropout", "AlphaDropout", "ActivityRegularization", "Masking", "Reshape", "Flatten",
                 "Cropping1D", "Cropping2D", "Cropping3D", "RepeatVector")
#: Layers that keep the layout (axis order) of their input.
_LAYOUT_KEEPING = ("Identity", "Dropout", "GaussianNoise", "GaussianDropout", "AlphaDropout", "ActivityRegularization",
                   "Activation", "ReLU", "LeakyReLU", "ELU", "PReLU", "Softmax", "Masking", "Add", "Subtract",
                   "Multiply", "Average", "Maximum", "Minimum", "Cropping1D", "Cropping2D", "Cropping3D",
                   "ZeroPadding1D", "ZeroPadding2D", "ZeroPadding3D", "UpSampling1D", "UpSampling2D", "UpSampling3D",
                   "SpatialDropout1D", "SpatialDropout2D", "SpatialDropout3D")


@dataclass
class OutputFacts:
    name: str
    index: int
    shape: tuple[int | None, ...]  # with None for the batch axis
    activation: str | None  # "softmax" | "sigmoid" | "linear" | other activation name | None (unknown)
    activation_layer: str | None  # the layer the activation was read from
    channels_axis: int | None  # axis (counting the batch) that holds the features, None when unknown
    channels_reason: str = ""


def _history(t):
    hist = getattr(t, "_keras_history", None)
    if hist is None:
        return None, None, None
    return hist.operation, hist.node_index, hist.tensor_index


def _node_inputs(op, node_index: int) -> list[Any]:
    try:
        return list(op._inbound_nodes[node_index].input_tensors)
    except (AttributeError, IndexError):
        return []


def _is_model(op) -> bool:
    return hasattr(op, "outputs") and hasattr(op, "layers") and getattr(op, "outputs", None) is not None


def _activation_name(fn) -> str | None:
    if fn is None:
        return None
    name = getattr(fn, "__name__", None) or type(fn).__name__
    return str(name).lower()


def final_activation(t, depth: int = 0) -> tuple[str | None, str | None]:
    """(activation name, layer name) of the op that produced tensor t; None when it cannot be told."""
    op, node_index, tensor_index = _history(t)
    if op is None or depth > 50:
        return None, None
    cls = type(op).__name__
    if _is_model(op):
        outs = op.outputs
        return final_activation(outs[tensor_index or 0], depth + 1)
    if cls == "Softmax":
        return "softmax", op.name
    if cls in ("Sigmoid",):
        return "sigmoid", op.name
    if cls == "ReLU":
        return "relu", op.name
    if cls == "Lambda":
        name = _activation_name(getattr(op, "function", None))
        if name in ("softmax", "sigmoid", "log_softmax"):
            return name, op.name
        return None, op.name
    act = getattr(op, "activation", None)
    if cls == "TimeDistributed":
        act = getattr(getattr(op, "layer", None), "activation", None)
    if act is not None and callable(act):
        name = _activation_name(act)
        if name in ("linear", None) and cls in ("Activation",):
            return final_activation(_node_inputs(op, node_index)[0], depth + 1) if _node_inputs(op, node_index) \
                else (name, op.name)
        return name, op.name
    if cls in _PASS_THROUGH or cls in ("ZeroPadding1D", "ZeroPadding2D", "ZeroPadding3D", "Permute"):
        ins = _node_inputs(op, node_index)
        return final_activation(ins[0], depth + 1) if ins else (None, None)
    if cls == "Concatenate":
        found = {final_activation(i, depth + 1)[0] for i in _node_inputs(op, node_index)}
        if len(found) == 1:
            return found.pop(), op.name
        return None, op.name
    return None, op.name


def channels_axis(t, rank: int, depth: int = 0) -> tuple[int | None, str]:
    """The axis (counting the batch axis) that holds the features of tensor t, and why we think so.
    rank: rank of t including the batch axis."""
    op, node_index, tensor_index = _history(t)
    if op is None or depth > 50 or rank < 3:
        return None, ""
    cls = type(op).__name__
    if _is_model(op):
        return channels_axis(op.outputs[tensor_index or 0], rank, depth + 1)
    fmt = getattr(op, "data_format", None)
    if fmt == "channels_first":
        return 1, f"layer {op.name!r} ({cls}) uses data_format='channels_first'"
    if fmt == "channels_last":
        return rank - 1, ""
    if cls == "Permute":
        dims = tuple(int(d) for d in getattr(op, "dims", ()))
        ins = _node_inputs(op, node_index)
        inner = channels_axis(ins[0], rank, depth + 1)[0] if ins else None
        inner = rank - 1 if inner is None else inner  # assume channels-last input
        if inner not in dims:
            return None, ""
        axis = 1 + dims.index(inner)
        if axis == rank - 1:
            return axis, ""
        return axis, f"layer {op.name!r} (Permute{dims}) puts the feature axis at position {axis}"
    if cls in ("BatchNormalization", "LayerNormalization", "GroupNormalization"):
        axis = getattr(op, "axis", -1)
        axis = axis[0] if isinstance(axis, (list, tuple)) and len(axis) == 1 else axis
        if isinstance(axis, int) and axis % rank == 1:
            return 1, f"layer {op.name!r} ({cls}) normalizes over axis 1, the channels-first feature axis"
    if cls == "Softmax":
        axis = getattr(op, "axis", -1)
        if isinstance(axis, int) and axis % rank == 1:
            return 1, f"layer {op.name!r} (Softmax) normalizes over axis 1"
    if cls in _LAYOUT_KEEPING:
        ins = _node_inputs(op, node_index)
        if ins:
            return channels_axis(ins[0], rank, depth + 1)
        return None, ""
    if cls in ("Dense", "EinsumDense", "TimeDistributed", "Embedding", "LSTM", "GRU", "SimpleRNN", "Bidirectional",
               "MultiHeadAttention", "Conv1DTranspose"):
        return rank - 1, ""
    return None, ""


def output_facts(model, output_names: list[str]) -> list[OutputFacts]:
    try:
        outs = list(getattr(model, "outputs", None) or [])
    except Exception:  # noqa: BLE001 - a subclassed model has no symbolic outputs
        outs = []
    facts = []
    for i, name in enumerate(output_names):
        t = outs[i] if i < len(outs) else None
        shape = tuple(t.shape) if t is not None else ()
        act, act_layer = final_activation(t) if t is not None else (None, None)
        axis, reason = channels_axis(t, len(shape)) if t is not None else (None, "")
        if axis is None and len(shape) >= 4 and None not in shape[1:] and shape[-1] == shape[-2] != shape[1]:
            axis, reason = 1, (f"the shape {shape_text(shape)} looks channels-first (the last two axes are equal "
                               "spatial sizes, the feature count comes first)")
        facts.append(OutputFacts(name, i, shape, act, act_layer, axis, reason))
    return facts

