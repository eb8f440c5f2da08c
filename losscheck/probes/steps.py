"""The compiled step of the inference pass: Keras's own total loss (what evaluate's test_step computes)
plus everything the numpy reference needs (outputs, the logits Keras's backend may use, masks, the
values of custom losses), from the same forward pass."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np

from losscheck._tf import keras, tf
from losscheck.loading.lossspec import AUTO_CROSSENTROPY, auto_crossentropy_spec
from losscheck.loading.memory import call_state_variables
from losscheck.probes.batching import structure
from losscheck.probes.compiled import build_state, compile_step, is_tensorflow, keras_mask
from losscheck.reference.specs import LOGITS_OP_TYPE, LOGITS_SHORTCUT_KINDS

if TYPE_CHECKING:
    from losscheck.probes.prober import Prober

ops = keras.ops


class StepOutputs(NamedTuple):
    """What one inference step gives for one batch (tensors; one entry per output in the lists)."""

    total: Any  # Keras's total loss of the batch (what evaluate averages)
    regularization: Any
    outputs: list[Any]
    logits: list[Any]  # the logits Keras's crossentropy uses instead of the output, or None
    masks: list[Any]  # Keras mask of each output, or None
    values: list[Any]  # per-element values of custom losses (their own call()), or None
    value_masks: list[Any]  # the mask a custom loss's values carry, or None
    raw_logits: list[Any]  # pre-activation of a float16/bfloat16 softmax/sigmoid output, or None
    activations: list[str | None]  # that activation's op type ("Softmax"/"Sigmoid"), or None


def _tf_logits(p, spec, loss) -> tuple[Any, Any, str | None]:
    """TensorFlow only, while tracing: (the logits Keras's crossentropy uses instead of the output,
    the pre-activation of a float16/bfloat16 softmax/sigmoid output, that activation's op type)."""
    cached = getattr(p, "_keras_logits", None)
    op_type = getattr(getattr(p, "op", None), "type", None)
    act = op_type if op_type in ("Softmax", "Sigmoid") else None
    lg = raw = None
    if spec is not None and spec.kind in LOGITS_SHORTCUT_KINDS:
        loss_dtype = getattr(loss, "dtype", None) or "float32"
        if p.dtype == tf.as_dtype(loss_dtype):
            # keras/src/backend/tensorflow/nn.py _get_logits: the cached attribute first,
            # then (graph tensors only) the input of the expected op type
            if cached is not None:
                lg = cached
            elif op_type == LOGITS_OP_TYPE[spec.kind]:
                lg = p.op.inputs[0]
    if p.dtype in (tf.float16, tf.bfloat16) and act is not None:
        raw = cached if cached is not None else p.op.inputs[0]
    return lg, raw, act


def _output_terms(preds: list[Any], ys: list[Any], spec_of: Callable, losses: list[Any], tensorflow: bool
                  ) -> tuple[list[Any], list[Any], list[Any], list[Any], list[Any], list[Any]]:
    """While tracing, per output: (logits, raw logits, activations, masks, custom-loss values, their masks)."""
    logits, raws, acts, masks, values, vmasks = [], [], [], [], [], []
    for i, p in enumerate(preds):
        spec, loss = spec_of(i, ys[i], p), losses[i]
        lg = raw = act = None
        if tensorflow:  # the logits shortcut exists only in TensorFlow's crossentropy
            lg, raw, act = _tf_logits(p, spec, loss)
        logits.append(lg)
        raws.append(raw)
        acts.append(act if raw is not None else None)
        masks.append(keras_mask(p))
        v = vm = None
        if spec is not None and spec.kind == "custom" and not isinstance(loss, str):
            dtype = getattr(loss, "dtype", None) or "float32"
            yt = keras.ops.convert_to_tensor(ys[i], dtype=dtype)
            yp = keras.ops.convert_to_tensor(p, dtype=dtype)
            v = loss.call(yt, yp)
            vm = keras_mask(v)
        values.append(v)
        vmasks.append(vm)
    return logits, raws, acts, masks, values, vmasks


def _traced_fn(model, outputs: list[str], losses: list[Any], spec_of: Callable, keras_loss: bool,
               compile_metrics: Any, traced: dict[str, Any]) -> Callable:
    """The function the step compiles; it records the outputs' activation op types in `traced`."""
    tensorflow = is_tensorflow()

    def fn(x, y, sw=None):
        pred = model(x, training=False)
        total = (model._compute_loss(x=x, y=y, y_pred=pred, sample_weight=sw, training=False) if keras_loss
                 else ops.zeros((), "float32"))
        if compile_metrics is not None:
            compile_metrics.update_state(y, pred, sample_weight=sw)
        # a "none" reduction gives a vector: Keras's loss tracker records its mean
        total = ops.mean(ops.cast(total, "float32"))
        extra = [ops.sum(ops.cast(v, "float32")) for v in model.losses]
        if not extra:
            reg = ops.zeros((), "float32")
        else:
            reg = tf.add_n(extra) if tensorflow else ops.sum(ops.stack(extra))
        if isinstance(pred, dict):
            preds = [pred[o] for o in outputs]
        else:
            preds = list(pred) if isinstance(pred, (list, tuple)) else [pred]
        ys = list(y) if isinstance(y, (list, tuple)) else [y]
        logits, raws, acts, masks, values, vmasks = _output_terms(preds, ys, spec_of, losses, tensorflow)
        traced["activations"] = acts
        return total, reg, preds, logits, masks, values, vmasks, raws

    return fn


def _signature(sample, with_weights: bool) -> list | None:
    """TensorFlow's input signature with a None batch dimension, as Keras's data adapter gives its step
    function; None on other backends."""
    if not is_tensorflow():
        return None
    x0, y0, sw0 = sample

    def relaxed(a):
        a = np.asarray(a)
        return tf.TensorSpec((None,) + a.shape[1:], tf.as_dtype(a.dtype))

    def spec_tree(arrays):
        specs = [relaxed(a) for a in arrays]
        return specs[0] if len(specs) == 1 else specs

    return [spec_tree(x0), spec_tree(y0)] + ([relaxed(sw0)] if with_weights else [])


def inference_fn(prober: Prober, sample, compile_metrics=None) -> tuple[Callable, list[Any], dict[str, Any]]:
    """The uncompiled inference step (see inference_step) for batches like `sample`, the variables it
    reads, and the dict it records the outputs' activation op types in while tracing. Creates the
    state the step needs first (build_state)."""
    model = prober.model
    outputs = prober.outputs
    losses = [prober.loss_fn(o) for o in outputs]
    traced: dict[str, Any] = {}

    def spec_of(i, y_t, y_p):
        o = outputs[i]
        loss = losses[i]
        if isinstance(loss, str) and loss.lower() in AUTO_CROSSENTROPY:
            prober.specs[o] = auto_crossentropy_spec(loss, tuple(y_t.shape), tuple(y_p.shape))
        return prober.specs.get(o)

    fn = _traced_fn(model, outputs, losses, spec_of, prober.keras_loss, compile_metrics, traced)
    x0, y0, sw0 = sample
    build_state(model, structure(x0), structure(y0), sw0)
    variables = [*model.trainable_variables, *call_state_variables(model),
                 *(compile_metrics.variables if compile_metrics is not None else ())]
    return fn, variables, traced


def step_outputs(result: tuple, traced: dict[str, Any], n_outputs: int) -> StepOutputs:
    """The StepOutputs of the inference step's result tuple."""
    total, reg, preds, logits, masks, values, vmasks, raws = result
    return StepOutputs(total, reg, preds, logits, masks, values, vmasks, raws,
                       traced.get("activations") or [None] * n_outputs)


def inference_step(prober: Prober, sample, with_weights: bool, compile_metrics=None) -> Callable[..., StepOutputs]:
    """One compiled pass step: Keras's own total loss (what evaluate's test_step computes) plus what
    the reference needs, from the same forward pass. The signature has a None batch dimension, as
    Keras's data adapter gives its step function. Resolves "crossentropy"/"ce" losses into
    prober.specs while tracing, from the symbolic shapes (as compile() does). With `compile_metrics`
    (the model's CompileMetrics) the step also updates them, as evaluate's test_step does."""
    fn, variables, traced = inference_fn(prober, sample, compile_metrics)
    sig = _signature(sample, with_weights)
    if with_weights:
        compiled = compile_step(fn, variables, sig)
    else:
        compiled = compile_step(lambda x, y: fn(x, y), variables, sig)
    n_outputs = len(prober.outputs)

    def step(x, y, sw) -> StepOutputs:
        return step_outputs(compiled(x, y, sw) if with_weights else compiled(x, y), traced, n_outputs)

    return step
