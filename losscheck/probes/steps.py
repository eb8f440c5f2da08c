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
    # the activation op type ("Softmax"/"Sigmoid") of a float16/bfloat16 output, or None: its
    # pre-activation comes from raw_logits_step
    activations: list[str | None]


def _low_precision_activation(p) -> str | None:
    """TensorFlow only, while tracing: the op type of a float16/bfloat16 softmax/sigmoid output, else None."""
    op_type = getattr(getattr(p, "op", None), "type", None)
    if p.dtype in (tf.float16, tf.bfloat16) and op_type in ("Softmax", "Sigmoid"):
        return op_type
    return None


def _tf_logits(p, spec, loss) -> Any:
    """TensorFlow only, while tracing: the logits Keras's crossentropy uses instead of the output, or None."""
    cached = getattr(p, "_keras_logits", None)
    op_type = getattr(getattr(p, "op", None), "type", None)
    lg = None
    if spec is not None and spec.kind in LOGITS_SHORTCUT_KINDS:
        loss_dtype = getattr(loss, "dtype", None) or "float32"
        if p.dtype == tf.as_dtype(loss_dtype):
            # keras/src/backend/tensorflow/nn.py _get_logits: the cached attribute first,
            # then (graph tensors only) the input of the expected op type
            if cached is not None:
                lg = cached
            elif op_type == LOGITS_OP_TYPE[spec.kind]:
                lg = p.op.inputs[0]
    return lg


def _output_terms(preds: list[Any], ys: list[Any], spec_of: Callable, losses: list[Any], tensorflow: bool
                  ) -> tuple[list[Any], list[Any], list[Any], list[Any], list[Any]]:
    """While tracing, per output: (logits, low-precision activations, masks, custom-loss values, their
    masks)."""
    logits, acts, masks, values, vmasks = [], [], [], [], []
    for i, p in enumerate(preds):
        spec, loss = spec_of(i, ys[i], p), losses[i]
        lg = act = None
        if tensorflow:  # the logits shortcut exists only in TensorFlow's crossentropy
            lg, act = _tf_logits(p, spec, loss), _low_precision_activation(p)
        logits.append(lg)
        acts.append(act)
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
    return logits, acts, masks, values, vmasks


def _pred_list(pred: Any, outputs: list[str]) -> list[Any]:
    """The model's outputs in the order of `outputs`."""
    if isinstance(pred, dict):
        return [pred[o] for o in outputs]
    return list(pred) if isinstance(pred, (list, tuple)) else [pred]


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
        preds = _pred_list(pred, outputs)
        ys = list(y) if isinstance(y, (list, tuple)) else [y]
        logits, acts, masks, values, vmasks = _output_terms(preds, ys, spec_of, losses, tensorflow)
        traced["activations"] = acts
        return total, reg, preds, logits, masks, values, vmasks

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
    total, reg, preds, logits, masks, values, vmasks = result
    activations = traced.get("activations") or [None] * n_outputs
    return StepOutputs(total, reg, preds, logits, masks, values, vmasks, activations)


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


def raw_logits_step(prober: Prober, sample) -> Callable[[Any], list[Any]]:
    """TensorFlow only: a compiled forward pass giving, per output, the pre-activation of a float16/bfloat16
    softmax/sigmoid output (None for the others), called as step(x) on batches like `sample`. It is kept
    apart from the inference step because a graph that also returns the pre-activation computes the
    activation unfused, in other float16 roundings than Keras's own evaluate step: the inference step's
    outputs, and Keras's loss on them, would no longer be evaluate's. Runs in a StatelessScope, so the
    layers' call state (stateful RNNs, custom counters) is left as the inference step needs it."""
    model, outputs = prober.model, prober.outputs

    def fn(x):
        with keras.StatelessScope():
            preds = _pred_list(model(x, training=False), outputs)
        raws = []
        for p in preds:
            cached = getattr(p, "_keras_logits", None)
            raws.append(None if _low_precision_activation(p) is None
                        else cached if cached is not None else p.op.inputs[0])
        return raws

    sig = _signature(sample, False)
    return compile_step(fn, [], None if sig is None else sig[:1])
