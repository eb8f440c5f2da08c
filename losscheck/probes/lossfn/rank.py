"""Rank probe: call each compiled loss function (its `call`, i.e. what Keras hands to the reduction)
on tensors of the output's real shape at several batch sizes and record the shapes it returns; one
value per sample (or per sample and position) keeps the batch axis first, following the batch size.

When it does not, measure how the batch axis was lost (a scalar, a reduction over axis 0, a
transpose) and, from the traced TensorFlow graph and the function's source, which expression
dropped it."""

from __future__ import annotations

import ast
import inspect
import textwrap
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from losscheck.core.formatting import shape_text
from losscheck.measurements.lossfn import RankRecord
from losscheck.probes.lossfn.outputs import OutputLoss, loss_function

SIZES = (1, 7, 32)


@dataclass
class RankProbe:
    """The rank probe's result while it is being measured (see RankRecord)."""

    shapes: dict[int, tuple[int, ...]]  # batch size -> returned shape
    y_pred_shape: tuple[int, ...]  # at the largest batch size
    ok: bool
    factor: float | None = None  # value(32 identical samples) / value(1 sample), when the batch axis is lost
    moved_to: int | None = None  # the axis the batch went to (transpose)
    slices: list[str] = field(default_factory=list)  # e.g. "y_pred[:, 1] drops axis 1"
    slice_fixes: list[str] = field(default_factory=list)
    batch_reductions: list[str] = field(default_factory=list)

    def record(self, on_data: bool) -> RankRecord:
        return RankRecord(tuple(self.shapes.items()), self.y_pred_shape, self.ok, self.factor, self.moved_to,
                          tuple(self.slices), tuple(self.slice_fixes), tuple(self.batch_reductions), on_data)


def call_loss(loss: Any, y_true: np.ndarray, y_pred: np.ndarray) -> np.ndarray:
    """The loss's own values (no reduction), as Keras computes them inside Loss.__call__."""
    from losscheck._tf import keras

    t = keras.ops.convert_to_tensor(np.asarray(y_true, dtype="float32"))
    p = keras.ops.convert_to_tensor(np.asarray(y_pred, dtype="float32"))
    loss = resolve(loss, t, p)
    return np.asarray(loss.call(t, p))


def resolve(loss: Any, t, p) -> Any:
    """A string loss ("crossentropy") becomes the Loss object compile() would pick for these shapes."""
    if isinstance(loss, str):
        from keras.src.trainers.compile_utils import get_loss

        loss = get_loss(loss, t, p)
    return loss


def probe(ol: OutputLoss, pool_t: np.ndarray, pool_p: np.ndarray, on_data: bool = False) -> RankRecord:
    """The shapes `ol`'s loss returns at each of SIZES samples of the pools (targets, predictions);
    when the batch axis is lost, how (factor, moved_to) and why (the traced graph, the source)."""
    shapes: dict[int, tuple[int, ...]] = {}
    for b in SIZES:
        shapes[b] = tuple(call_loss(ol.loss, pool_t[:b], pool_p[:b]).shape)
    big = SIZES[-1]
    # a built-in counts like the user's own loss: Dice/Tversky with axis=None return one value per batch
    ok = all(len(s) >= 1 and s[0] == b for b, s in shapes.items())
    result = RankProbe(shapes, tuple(pool_p[:big].shape), ok)
    if ok:
        return result.record(on_data)
    rank = max(len(s) for s in shapes.values())
    for k in range(1, rank):
        if all(len(s) > k and s[k] == b for b, s in shapes.items()):
            result.moved_to = k
            break
    one = call_loss(ol.loss, pool_t[:1], pool_p[:1])
    same_t = np.repeat(pool_t[:1], big, axis=0)
    same_p = np.repeat(pool_p[:1], big, axis=0)
    many = call_loss(ol.loss, same_t, same_p)
    if result.moved_to is None and np.all(np.isfinite(one)) and abs(float(np.mean(one))) > 1e-12:
        result.factor = float(np.mean(many) / np.mean(one))
    try:
        from losscheck.probes.compiled import is_tensorflow

        if is_tensorflow():  # the loss's TensorFlow graph names the slices; other backends: shapes only
            _graph_details(ol, pool_t, pool_p, result)
    except Exception:  # noqa: BLE001 - the trace only adds detail; the shapes above are the evidence
        pass
    return result.record(on_data)


# -- why: the traced graph and the source ------------------------------------------------------------
_FOLLOW = ("Identity", "Cast", "Squeeze", "ExpandDims", "Reshape", "IdentityN")


def _origin(tensor, placeholders) -> int | None:
    for _ in range(12):
        for i, ph in enumerate(placeholders):
            if tensor is ph or tensor.name == ph.name:
                return i
        op = tensor.op
        if op.type not in _FOLLOW or not op.inputs:
            return None
        tensor = op.inputs[0]
    return None


def _param_names(ol: OutputLoss) -> tuple[str, str]:
    fn = loss_function(ol.loss)
    try:
        params = [p for p in inspect.signature(fn).parameters if p != "self"]
    except (TypeError, ValueError):
        params = []
    if len(params) >= 2:
        return params[0], params[1]
    return "y_true", "y_pred"


def _source_subscripts(ol: OutputLoss) -> list[tuple[str, str, int, int, int | None]]:
    """(text, variable, position, index, position from the end after an ellipsis) of every integer index
    `name[:, i]` / `name[..., i]` in the loss function's source."""
    fn = loss_function(ol.loss)
    try:
        tree = ast.parse(textwrap.dedent(inspect.getsource(fn)))
    except (OSError, TypeError, SyntaxError):
        return []
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Subscript) or not isinstance(node.value, ast.Name):
            continue
        elts = node.slice.elts if isinstance(node.slice, ast.Tuple) else [node.slice]
        has_ellipsis = any(isinstance(e, ast.Constant) and e.value is Ellipsis for e in elts)
        for axis, e in enumerate(elts):
            value = e.value if isinstance(e, ast.Constant) else None
            if isinstance(e, ast.UnaryOp) and isinstance(e.op, ast.USub) and isinstance(e.operand, ast.Constant) \
                    and isinstance(e.operand.value, int):
                value = -e.operand.value
            if isinstance(value, int) and not isinstance(value, bool):
                from_end = axis - len(elts) if has_ellipsis else None
                found.append((ast.unparse(node), node.value.id, axis, value, from_end))
    return found


def _static_index(t, depth: int = 0):
    """A constant index, folding the `i < 0 ? i + n : i` select keras.ops.take wraps around it."""
    from losscheck._tf import tf

    value = tf.get_static_value(t)
    if value is not None or depth > 3:
        return value
    op = t.op
    if op.type in ("SelectV2", "Select") and op.inputs[0].op.type == "Less":
        a, b = (tf.get_static_value(x) for x in op.inputs[0].op.inputs)
        if a is not None and b is not None:
            return _static_index(op.inputs[1] if a < b else op.inputs[2], depth + 1)
    if op.type == "Identity":
        return _static_index(op.inputs[0], depth + 1)
    return None


def _dropped_axes(op, rank: int) -> list[tuple[int, int]]:
    """(axis, index) of every non-batch axis an integer index removes: x[:, i], x[..., i], take/gather."""
    from losscheck._tf import tf

    if op.type == "GatherV2":
        indices = _static_index(op.inputs[1])
        axis = tf.get_static_value(op.inputs[2])
        if indices is None or axis is None or np.ndim(indices) != 0:
            return []
        axis = int(axis) % rank
        return [(axis, int(indices))] if axis > 0 else []
    mask = op.get_attr("shrink_axis_mask")
    begin = tf.get_static_value(op.inputs[1])
    if not mask or op.get_attr("new_axis_mask") or begin is None:
        return []
    ellipsis = op.get_attr("ellipsis_mask")
    n_spec = len(begin)
    e = next((j for j in range(n_spec) if (ellipsis >> j) & 1), None) if ellipsis else None
    out = []
    for j in range(n_spec):
        if not (mask >> j) & 1:
            continue
        axis = j if e is None or j < e else j + (rank - n_spec)
        if 0 < axis < rank:
            out.append((axis, int(begin[j])))
    return out


def _record_drop(result: RankProbe, param: str, in_shape, axis: int, index: int, source, gather: bool,
                 batch: int) -> None:
    rank = in_shape.rank
    same = [s for s in source if s[3] == index and (s[2] == axis or (s[4] is not None and rank + s[4] == axis))]
    match = [s for s in same if s[1] == param] or (same if len(same) == 1 else [])
    var = match[0][1] if match else param
    if match:
        text = match[0][0]
    elif gather:
        text = f"taking index {index} of axis {axis} of {var} (gather/take)"
    else:
        text = f"{var}[{', '.join([':'] * axis + [str(index)])}]"
    size = in_shape[axis]
    before = shape_text((batch,) + tuple(in_shape[1:]))
    after = shape_text((batch,) + tuple(d for i, d in enumerate(in_shape) if i not in (0, axis)))
    result.slices.append(f"{text} drops axis {axis} ({before} -> {after})")
    last = index == -1 or (size is not None and index == size - 1)
    keep = f"{index}:" if last else f"{index}:{index + 1}"
    if match and "..." in match[0][0] and axis == rank - 1:
        fix = f"{var}[..., {keep}]"
    else:
        fix = f"{var}[{', '.join([':'] * axis + [keep])}]"
    if fix not in result.slice_fixes:
        result.slice_fixes.append(fix)


def _graph_details(ol: OutputLoss, pool_t: np.ndarray, pool_p: np.ndarray, result: RankProbe) -> None:
    from losscheck._tf import tf

    t_spec = tf.TensorSpec((None,) + pool_t.shape[1:], tf.float32)
    p_spec = tf.TensorSpec((None,) + pool_p.shape[1:], tf.float32)
    loss = resolve(ol.loss, tf.constant(pool_t[:2]), tf.constant(pool_p[:2]))

    @tf.function(autograph=False)
    def f(t, p):
        return loss.call(t, p)

    graph = f.get_concrete_function(t_spec, p_spec).graph
    placeholders = [t for t in graph.inputs[:2]]
    names = _param_names(ol)
    source = _source_subscripts(ol)
    for op in graph.get_operations():
        if op.type in ("StridedSlice", "GatherV2"):
            arg = _origin(op.inputs[0], placeholders)
            in_shape = op.inputs[0].shape
            if arg is None or in_shape.rank is None:
                continue
            for axis, index in _dropped_axes(op, in_shape.rank):
                _record_drop(result, names[arg], in_shape, axis, index, source, op.type == "GatherV2",
                             pool_p.shape[0])
        elif op.type in ("Sum", "Mean", "Max", "Min", "Prod") and len(op.inputs) == 2:
            axes = tf.get_static_value(op.inputs[1])
            shape = op.inputs[0].shape
            if axes is None or shape.rank is None or shape.rank == 0:
                continue
            axes = [int(a) % shape.rank for a in np.atleast_1d(axes)]
            if any(shape[a] is None for a in axes):
                what = {"Sum": "sum", "Mean": "mean", "Max": "max", "Min": "min", "Prod": "product"}[op.type]
                result.batch_reductions.append(f"a {what} over axes {axes} of a rank-{shape.rank} tensor "
                                               "includes the batch axis")
    # the prediction first: that is the output the finding is about
    first = names[1] + "["
    result.slices.sort(key=lambda text: not text.startswith(first))
    result.slice_fixes.sort(key=lambda text: not text.startswith(first))
