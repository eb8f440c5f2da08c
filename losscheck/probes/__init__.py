"""Every pass that runs the model: the inference pass (evaluate + everything the numpy reference
needs, in one compiled pass), the training-mode passes (all layers, or one family only), and the
one-epoch fit (on the loaded model, every variable restored afterwards). The only module that calls
the model.

Training-mode passes force `training` per layer by shadowing `layer.call` on the instance (works at
any nesting depth, frozen bases included) and restore every non-trainable variable afterwards
(BatchNormalization moving statistics, RNG seed states), so the model is left exactly as loaded.
"""

from __future__ import annotations

import contextlib
import functools
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from losscheck import usercode
from losscheck._tf import invalid_argument_errors, keras, tf
from losscheck.core.errors import DataFileError, UsageError
from losscheck.core.taxonomy import BUILTIN_FAMILIES, FAMILIES, FROZEN_BATCHNORM, STOCHASTIC_FAMILIES, rate_of
from losscheck.loading.data import Dataset
from losscheck.loading.lossspec import AUTO_CROSSENTROPY, auto_crossentropy_spec
from losscheck.loading.memory import assigned_back, call_state_variables, state_variables
from losscheck.probes.compiled import build_state, compile_step, is_tensorflow, keras_mask
from losscheck.reference import EpochMean, LossSpec, output_batch_loss
from losscheck.reference.specs import LOGITS_OP_TYPE, LOGITS_SHORTCUT_KINDS
from losscheck.reference.variants import SemanticStats

L = keras.layers
ops = keras.ops
DROPOUT_TYPES: tuple[type, ...] = (L.Dropout,)  # SpatialDropout* subclass Dropout
NOISE_TYPES: tuple[type, ...] = tuple(
    getattr(L, n) for n in ("GaussianNoise", "GaussianDropout", "AlphaDropout") if hasattr(L, n)
)
BN_TYPES: tuple[type, ...] = (L.BatchNormalization,)


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
                (a for a in args if isinstance(a, Dataset) or getattr(a, "pipeline", False)),
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


# ----------------------------------------------------------------------------------------------
# Layer families
# ----------------------------------------------------------------------------------------------
def all_layers(model) -> list[Any]:
    """Every layer at any depth (nested models, layers held as attributes)."""
    return [lyr for lyr in model._flatten_layers(include_self=False, recursive=True)]


def _has_internal_dropout(layer) -> bool:
    """A layer with a dropout rate of its own (an RNN's `dropout`, `recurrent_dropout`): not a Dropout layer,
    and not one that holds Dropout sub-layers (those carry the rate; the holder is walked past)."""
    if isinstance(layer, DROPOUT_TYPES) or not any(rate_of(layer, a) > 0 for a in ("dropout", "recurrent_dropout")):
        return False
    return not any(isinstance(s, DROPOUT_TYPES) for s in layer._flatten_layers(include_self=False, recursive=True))


#: built-in random augmentation layers whose names do not start with "Random"
AUGMENTATION_NAMES = frozenset({"AugMix", "CutMix", "MixUp", "RandAugment", "Solarization"})
#: built-in layers whose `training` behaviour no other family covers (SpectralNormalization updates
#: its power-iteration vectors; wrappers run foreign code that may read `training`)
TRAINING_BUILTINS = frozenset({"SpectralNormalization", "TFSMLayer", "JaxLayer", "FlaxLayer", "TorchModuleWrapper"})


def _is_augmentation(layer) -> bool:
    name = type(layer).__name__
    return (name.startswith("Random") or name in AUGMENTATION_NAMES) and "training" in _call_params(layer)


def _is_keras_builtin(layer) -> bool:
    return type(layer).__module__.split(".")[0] in ("keras", "tf_keras")


def _has_custom_training(layer) -> bool:
    """A layer outside the known families whose call() takes `training`: a user-defined layer (not a
    nested model), a Lambda whose function takes it, or one of TRAINING_BUILTINS."""
    if isinstance(layer, keras.Model) or "training" not in _call_params(layer):
        return False
    if isinstance(layer, L.Lambda):
        return bool(getattr(layer, "_fn_expects_training_arg", False))
    return not _is_keras_builtin(layer) or type(layer).__name__ in TRAINING_BUILTINS


@functools.cache
def _call_params_of(cls: type) -> tuple[str, ...]:
    import inspect

    try:
        return tuple(inspect.signature(cls.call).parameters)  # type: ignore[attr-defined]
    except (TypeError, ValueError):
        return ()


def _call_params(layer) -> tuple[str, ...]:
    return _call_params_of(type(layer))  # type: ignore[arg-type]  # classes are hashable


@dataclass
class LayerFamilies:
    """Layers whose behaviour depends on `training`, by family. Names are the layers' own names."""

    dropout: list[Any] = field(default_factory=list)
    batchnorm: list[Any] = field(default_factory=list)  # trainable BN: batch statistics in fit
    frozen_batchnorm: list[Any] = field(default_factory=list)  # trainable=False: inference mode even in fit
    noise: list[Any] = field(default_factory=list)
    custom: list[Any] = field(default_factory=list)  # other layers whose call() takes `training`
    # layers of the families above inside a nested model called with training=False in the saved graph,
    # which Keras overrides in fit: layer name -> nested model name (see overridden_training_false)
    overridden: dict[str, str] = field(default_factory=dict)

    #: families whose training behaviour draws random numbers (or may: custom layers)
    STOCHASTIC = STOCHASTIC_FAMILIES
    NAMES = FAMILIES

    @staticmethod
    def of(model) -> LayerFamilies:
        fam = LayerFamilies()
        for layer in all_layers(model):
            family = family_of(layer)
            if family is not None:
                getattr(fam, family).append(layer)
        fam.overridden = overridden_training_false(model)
        return fam

    def known(self) -> list[Any]:
        """The layers of the dropout, batchnorm and noise families."""
        return [*self.dropout, *self.batchnorm, *self.noise]

    def names(self, family: str) -> list[str]:
        return [lyr.name for lyr in getattr(self, family)]

    def named(self) -> dict[str, list[str]]:
        """Layer names by family (every family, then frozen BatchNormalization): what the rules read."""
        return {k: self.names(k) for k in (*FAMILIES, FROZEN_BATCHNORM)}


def family_of(layer) -> str | None:
    """The family of a layer (FAMILIES or FROZEN_BATCHNORM), None for a layer with no training behaviour
    (a Dropout of rate 0 included)."""
    if isinstance(layer, BN_TYPES):
        return "batchnorm" if getattr(layer, "trainable") else FROZEN_BATCHNORM  # noqa: B009 - typed as object
    if isinstance(layer, DROPOUT_TYPES):
        return "dropout" if rate_of(layer, "rate") > 0 else None
    if _has_internal_dropout(layer):
        return "dropout"
    if isinstance(layer, NOISE_TYPES) or _is_augmentation(layer):
        return "noise"
    if _has_custom_training(layer):
        return "custom"
    return None


@functools.cache
def keras_overrides_training_false() -> bool:
    """Does this Keras run a nested model called as `base(x, training=False)` in training mode when the
    outer call (fit) passes training=True? Keras 3.15 does (its functional graph replaces the stored
    argument by the outer one); tf.keras 2 did not. Measured on a two-layer model."""
    inner_in = keras.Input((64,))
    inner = keras.Model(inner_in, L.Dropout(0.5)(inner_in))
    outer_in = keras.Input((64,))
    outer = keras.Model(outer_in, inner(outer_in, training=False))
    out = np.asarray(outer(np.ones((4, 64), "float32"), training=True))
    return bool(np.any(out != 1.0))


def overridden_training_false(model) -> dict[str, str]:
    """Layers with a training behaviour (Dropout, trainable BatchNormalization, noise, augmentation)
    inside a nested model whose call in a functional graph stores training=False, when this Keras
    overrides that flag in fit: layer name -> the nested model's name. Empty when it does not."""
    found: dict[str, str] = {}

    def visit(container) -> None:
        for child in getattr(container, "layers", None) or []:
            if not isinstance(child, keras.Model):
                continue
            nodes = getattr(child, "_inbound_nodes", None) or []
            flagged = any(getattr(getattr(n, "arguments", None), "kwargs", {}).get("training") is False for n in nodes)
            if flagged:
                for layer in all_layers(child):
                    if family_of(layer) in BUILTIN_FAMILIES:
                        found.setdefault(layer.name, child.name)
            visit(child)

    visit(model)
    if found and not keras_overrides_training_false():
        return {}
    return found


@contextlib.contextmanager
def forced_training(model, layers: list[Any], mode: bool) -> Iterator[None]:
    """Within the block, every layer in `layers` runs `call(..., training=mode)` whatever the outer
    flag. Restores the calls and every variable a call may change (call_state_variables) on exit."""
    patched = []
    try:
        for layer in layers:
            if "call" in layer.__dict__:
                continue
            original = layer.call

            @functools.wraps(original)
            def call(*args, __orig=original, **kwargs):
                kwargs["training"] = mode
                return __orig(*args, **kwargs)

            layer.__dict__["call"] = call  # instance attribute shadows the method; bypasses tracking
            patched.append(layer)
        with assigned_back(call_state_variables(model)):
            yield
    finally:
        for layer in patched:
            del layer.__dict__["call"]


class _VariantCalls:
    """Shadows `call` on every layer of a model (instance attribute, like `forced_training`) with a
    wrapper that (1) forces `training=True` on the layers of the current variant and (2) memoizes the
    call within one trace, keyed on the input tensors' identities, the other arguments, the effective
    `training` and which forced layers sit inside the layer (nested models). Reset per trace. A layer
    that reads a variable in `unshared` (each variant holds its own value) is never memoized."""

    def __init__(self, model, unshared: Sequence[Any] = ()) -> None:
        self.layers = [lyr for lyr in all_layers(model) if "call" not in lyr.__dict__]
        ids = {id(v) for v in unshared}
        self.unshared = {id(lyr) for lyr in self.layers
                         if ids and any(id(v) in ids for v in call_state_variables(lyr))}
        self.inside = {id(lyr): {id(s) for s in lyr._flatten_layers(include_self=True, recursive=True)}
                       for lyr in self.layers}
        self.forced: set[int] = set()
        self.off: set[int] = set()
        self.cache: dict[tuple, tuple] = {}

    def reset(self) -> None:
        self.cache = {}

    def force(self, layers: Sequence[Any], off: Sequence[Any] = ()) -> None:
        """`layers` run with training=True, `off` with training=False (even when a layer around them
        passes its own `training` on), every other layer as the outer call says."""
        self.forced = {id(lyr) for lyr in layers}
        self.off = {id(lyr) for lyr in off} - self.forced

    def __enter__(self) -> _VariantCalls:
        for layer in self.layers:
            layer.__dict__["call"] = self._wrap(layer, layer.call)
        return self

    def __exit__(self, *exc) -> None:
        for layer in self.layers:
            layer.__dict__.pop("call", None)
        self.cache = {}

    def _wrap(self, layer, original):
        me = id(layer)
        stateful = bool(getattr(layer, "stateful", False)) or me in self.unshared

        @functools.wraps(original)
        def call(*args, **kwargs):
            if me in self.forced:
                kwargs["training"] = True
            elif me in self.off:
                kwargs["training"] = False
            key = None if stateful else _call_key(args, kwargs)
            if key is None:
                return original(*args, **kwargs)
            inside = self.inside[me]
            key = (me, key, frozenset(self.forced & inside), frozenset(self.off & inside))
            hit = self.cache.get(key)
            if hit is not None:
                return hit[0]
            out = original(*args, **kwargs)
            self.cache[key] = (out, args, kwargs)  # keep the inputs alive: their ids stay unique
            return out

        return call


def _call_key(args, kwargs) -> tuple | None:
    """A hashable key of a layer call's arguments: tensors by identity, plain values by value; None
    when an argument is neither (then the call is not memoized)."""
    parts: list[Any] = []
    tensorflow = is_tensorflow()
    flatten = tf.nest.flatten if tensorflow else keras.tree.flatten
    for leaf in flatten([list(args), dict(kwargs)]):
        if (tensorflow and isinstance(leaf, (tf.Tensor, tf.Variable))) or hasattr(leaf, "_keras_history") or \
                keras.ops.is_tensor(leaf):
            parts.append(("t", id(leaf)))
        elif leaf is None or isinstance(leaf, (bool, int, float, str)):
            parts.append(leaf)
        else:
            return None
    parts.append(tuple(sorted(kwargs)))
    return tuple(parts)


def _floatx(a: np.ndarray) -> np.ndarray:
    a = np.asarray(a)
    if np.issubdtype(a.dtype, np.floating) and a.dtype != np.dtype(keras.backend.floatx()):
        return a.astype(keras.backend.floatx())
    return a


# ----------------------------------------------------------------------------------------------
# Batches
# ----------------------------------------------------------------------------------------------
def _structure(arrays: list[np.ndarray]) -> Any:
    return arrays[0] if len(arrays) == 1 else list(arrays)


def class_weight_sample_weights(y: np.ndarray, class_weight: dict[int, float]) -> np.ndarray:
    """Keras's class_weight -> sample_weight: argmax of one-hot y (last dim > 1), else round(squeeze(y));
    classes missing from the map weigh 1.0."""
    y = np.asarray(y)
    labels = np.argmax(y, axis=-1) if y.ndim > 1 and y.shape[-1] > 1 else np.round(y.reshape(y.shape[0], -1)[:, 0])
    return np.array([class_weight.get(int(c), 1.0) for c in labels.reshape(-1)], dtype="float32")


def data_batches(data, batch_size: int, limit: int | None = None):
    """(start, stop, xs, ys, sample_weight) per batch: the data's own `batches` (a pipeline streams
    them), else rows sliced by `batch_bounds` (any object with `slice` and `batch_bounds`)."""
    batches = getattr(data, "batches", None)
    if batches is not None:
        yield from batches(batch_size, limit)
        return
    for start, stop in data.batch_bounds(batch_size, limit):
        yield (start, stop, *data.slice(start, stop))


@dataclass
class BatchResult:
    """One batch of the inference pass, as numpy."""

    start: int
    stop: int
    x: list[np.ndarray]
    y: list[np.ndarray]
    sample_weight: np.ndarray | None
    outputs: list[np.ndarray]
    logits: list[np.ndarray | None]  # pre-activation logits Keras's backend may use (see reference.uses_logits)
    masks: list[np.ndarray | None]  # Keras mask of each output merged with the loss's own mask
    values: list[np.ndarray | None]  # per-element values of custom losses (their own call())
    total: float  # Keras's total loss for this batch (what evaluate averages)
    regularization: float
    output_losses: dict[str, float]  # reference L_o,b (unweighted)
    data_loss: float  # sum_o lw_o L_o,b from the reference
    # pre-activation of a float16/bfloat16 softmax/sigmoid output, which Keras cannot use (it casts
    # the output to float32 first), and that activation's op type ("Softmax"/"Sigmoid")
    raw_logits: list[np.ndarray | None] = field(default_factory=list)
    activations: list[str | None] = field(default_factory=list)

    @property
    def n(self) -> int:
        return self.stop - self.start


@dataclass
class InferenceResult:
    evaluate: float
    regularization: float
    manual: float | None
    output_loss: dict[str, float]  # exact dataset mean per output (n_b-weighted)
    # Keras's compiled per-output log: on TensorFlow the unweighted mean of the batch losses (the traced
    # batch dimension is unknown, so its Mean gets no weight); on JAX/torch (static shapes) the exact mean
    output_loss_keras_log: dict[str, float]
    batch_totals: list[tuple[int, float]]  # (n_b, total_b)
    batch_output_losses: list[dict[str, float]]  # per batch: output -> reference L_o,b
    manual_unsupported: list[str]
    n_batches: int
    # natural-numpy variants of the data loss (reference.variants.SemanticStats.summary()), or None
    semantic: dict[str, Any] | None = None
    manual_errors: dict[str, str] = field(default_factory=dict)  # output -> why manual is missing
    metrics: dict[str, Any] | None = None  # compiled metrics as evaluate(return_dict=True) names them
    metrics_error: str | None = None  # why the compiled metrics could not be measured


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


class Prober:
    """Runs the passes on one loaded, compiled model and one dataset."""

    def __init__(self, loaded, data: Dataset, batch_size: int, seed: int = 0) -> None:
        self.loaded = loaded
        self.model = loaded.model
        self.data = data
        self.batch_size = batch_size
        self.seed = seed
        self.families = LayerFamilies.of(self.model)
        self.last_batches: list[tuple[int, dict]] = []
        self.specs: dict[str, LossSpec | None] = loaded.specs
        self.outputs = loaded.output_names
        # Keras's compute_loss has a loss to compute; else (the loss lives only in the model's own
        # train/test steps) the passes record a zero total and losscheck reports none of them as a loss
        self.keras_loss = loaded.loop.keras_loss

    # -- helpers -------------------------------------------------------------------------------
    def _batches(self, limit: int | None = None, class_weight=None):
        """(start, stop, xs, ys, sample_weight) per batch; with class_weight, the sample weights fit
        derives from it."""
        for start, stop, xs, ys, sw in data_batches(self.data, self.batch_size, limit):
            yield start, stop, xs, ys, (self._class_weighted(ys, sw, class_weight) if class_weight else sw)

    @staticmethod
    def _class_weighted(ys, sw, class_weight):
        """The sample weights fit derives from class_weight (Keras refuses both at once)."""
        if sw is not None:
            raise UsageError("--class-weight cannot be combined with sample_weight in the data file "
                             "(Keras raises ValueError for that too); drop one of them")
        return class_weight_sample_weights(ys[0], class_weight)

    def _loss_fn(self, output: str):
        return self.loaded.losses.get(output)

    # -- inference -----------------------------------------------------------------------------
    def _inference_step(self, sample, with_weights: bool, compile_metrics=None):
        """One compiled pass step: Keras's own total loss (what evaluate's test_step computes) plus what
        the reference needs, from the same forward pass. The signature has a None batch dimension, as
        Keras's data adapter gives its step function. Resolves "crossentropy"/"ce" losses into
        self.specs while tracing, from the symbolic shapes (as compile() does). With `compile_metrics`
        (the model's CompileMetrics) the step also updates them, as evaluate's test_step does."""
        model = self.model
        outputs = self.outputs
        losses = [self._loss_fn(o) for o in outputs]
        traced: dict[str, Any] = {}

        def spec_of(i, y_t, y_p):
            o = outputs[i]
            loss = losses[i]
            if isinstance(loss, str) and loss.lower() in AUTO_CROSSENTROPY:
                self.specs[o] = auto_crossentropy_spec(loss, tuple(y_t.shape), tuple(y_p.shape))
            return self.specs.get(o)

        tensorflow = is_tensorflow()
        keras_loss = self.keras_loss

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
            traced["activations"] = acts
            return total, reg, preds, logits, masks, values, vmasks, raws

        x0, y0, sw0 = sample
        build_state(model, _structure(x0), _structure(y0), sw0)
        variables = [*model.trainable_variables, *call_state_variables(model),
                     *(compile_metrics.variables if compile_metrics is not None else ())]
        if tensorflow:
            def relaxed(a):
                a = np.asarray(a)
                return tf.TensorSpec((None,) + a.shape[1:], tf.as_dtype(a.dtype))

            def spec_tree(arrays):
                specs = [relaxed(a) for a in arrays]
                return specs[0] if len(specs) == 1 else specs

            sig = [spec_tree(x0), spec_tree(y0)] + ([relaxed(sw0)] if with_weights else [])
        else:
            sig = None
        if with_weights:
            compiled = compile_step(fn, variables, sig)
        else:
            compiled = compile_step(lambda x, y: fn(x, y), variables, sig)

        def step(x, y, sw):
            out = compiled(x, y, sw) if with_weights else compiled(x, y)
            return (*out, traced.get("activations") or [None] * len(outputs))

        return step

    @data_errors
    def inference_pass(self, observers: Sequence[Callable[[BatchResult], None]] = (),
                       metrics: bool = False) -> InferenceResult:
        """evaluate (Keras's own compute_loss on the inference outputs), regularization, and the numpy
        reference `manual`, all from one compiled pass over the data. Also measures the variants the
        semantic findings explain (reference.variants). metrics=True: the compiled metrics too, as
        evaluate(return_dict=True) gives them (InferenceResult.metrics; the metric state is restored).
        State a call updates (stateful RNN states, a custom layer's variables) carries from batch to batch
        as in evaluate, from the saved values, and is put back afterwards."""
        with assigned_back(call_state_variables(self.model)):
            return self._inference_pass(observers, metrics)

    def _inference_pass(self, observers: Sequence[Callable[[BatchResult], None]], metrics: bool) -> InferenceResult:
        from losscheck.probes.metrics import KerasMetrics

        keras_metrics = KerasMetrics(self.model) if metrics else None
        ev, reg, manual = EpochMean(), EpochMean(), EpochMean()
        per_out = {o: EpochMean() for o in self.outputs if self.specs.get(o) is not None}
        per_out_log: dict[str, list[float]] = {o: [] for o in per_out}
        batch_totals: list[tuple[int, float]] = []
        batch_output_losses: list[dict[str, float]] = []
        unsupported: dict[str, str] = {}
        weights = self.loaded.loss_weights
        semantic = SemanticStats(self.specs, weights, self.outputs)
        nb = 0
        step = None
        for start, stop, xs, ys, sw in self._batches():
            # Keras's array adapter casts every float array (x, y, sample_weight) to floatx
            xs, ys = [_floatx(a) for a in xs], [_floatx(a) for a in ys]
            sw = None if sw is None else _floatx(sw)
            if step is None:
                cm = None if keras_metrics is None else keras_metrics.begin(_structure(xs), _structure(ys), sw)
                step = self._inference_step((xs, ys, sw), sw is not None, cm)
            total, r, preds, logits, masks, values, vmasks, raws, acts = step(_structure(xs), _structure(ys), sw)
            n = stop - start
            nb += 1
            total, r = float(total), float(r)
            ev.add(total, n)
            reg.add(r, n)
            batch_totals.append((n, total))
            out_np = [np.asarray(p) for p in preds]
            lg_np = [None if t is None else np.asarray(t) for t in logits]
            raw_np = [None if t is None else np.asarray(t) for t in raws]
            m_np = [None if t is None else np.asarray(t) for t in masks]
            v_np = [None if t is None else np.asarray(t, np.float64) for t in values]
            for i in range(len(m_np)):
                if vmasks[i] is not None:
                    vm = np.asarray(vmasks[i]).astype(bool)
                    prev = m_np[i]
                    m_np[i] = vm if prev is None else (prev.astype(bool) & vm)
            losses_b: dict[str, float] = {}
            for i, o in enumerate(self.outputs):
                spec = self.specs.get(o)
                if spec is None or o in unsupported:
                    continue
                if spec.kind == "custom" and v_np[i] is None:
                    unsupported[o] = f"the loss {spec.label!r} has no call() losscheck can run"
                    continue
                try:
                    with np.errstate(all="ignore"):
                        losses_b[o] = output_batch_loss(
                            spec, ys[i], out_np[i], sample_weight=sw, mask=m_np[i], logits=lg_np[i], values=v_np[i]
                        )
                except Exception as exc:  # noqa: BLE001 - shapes the reference cannot reproduce: no manual, never a fake
                    unsupported[o] = f"{type(exc).__name__}: {exc}"
                    continue
                per_out[o].add(losses_b[o], n)
                per_out_log[o].append(losses_b[o])
            batch_output_losses.append(losses_b)
            data_loss = sum(weights[o] * v for o, v in losses_b.items())
            manual.add(data_loss, n)
            res = BatchResult(start, stop, xs, ys, sw, out_np, lg_np, m_np, v_np, total, r, losses_b, data_loss,
                              raw_np, acts)
            if not unsupported:
                semantic(res)
            for obs in observers:
                obs(res)
        metric_values = None if keras_metrics is None else keras_metrics.end()
        return InferenceResult(
            evaluate=ev.value,
            regularization=reg.value,
            manual=None if unsupported else manual.value,
            output_loss={o: m.value for o, m in per_out.items()},
            output_loss_keras_log=({o: float(np.mean(v)) if v else 0.0 for o, v in per_out_log.items()}
                                   if is_tensorflow() else {o: m.value for o, m in per_out.items()}),
            batch_totals=batch_totals,
            batch_output_losses=batch_output_losses,
            manual_unsupported=sorted(unsupported),
            n_batches=nb,
            semantic=None if unsupported else semantic.summary(),
            manual_errors=dict(unsupported),
            metrics=metric_values,
            metrics_error=None if keras_metrics is None else keras_metrics.error,
        )

    # -- training-mode passes ------------------------------------------------------------------
    def training_pass(self, family: str | None, class_weight=None, limit: int | None = None) -> float:
        """The loss a fit step measures before its update, averaged over batches as Keras does.

        family None: model(x, training=True) (every layer in training behaviour);
        family "dropout"/"batchnorm"/"noise"/"custom": only that family forced to training, the rest
        inference; the layers of the other families are held at training=False even inside a forced
        layer (a custom block that passes `training` on to its Dropout and BatchNormalization is measured
        without them, a block with a dropout rate of its own without its BatchNormalization);
        "inference": no layer forced (what `inference_loss` gives).
        """
        return self.training_passes([family], class_weight, limit)[family]

    @data_errors
    def training_passes(self, families: list[str | None], class_weight=None, limit: int | None = None,
                        draw: int = 0) -> dict[str | None, float]:
        """Several training-mode figures (see `training_pass`) from ONE compiled pass over the data;
        the loss of every variant with `class_weight` applied when it is given."""
        plain, weighted = self.training_passes_weighted(families, class_weight, limit, draw)
        return weighted if class_weight else plain

    @data_errors
    def training_passes_weighted(self, families: list[str | None], class_weight=None, limit: int | None = None,
                                 draw: int = 0) -> tuple[dict[str | None, float], dict[str | None, float]]:
        """Several training-mode figures (see `training_pass`) from ONE compiled pass over the first
        `limit` samples (all when None), batched as fit batches them: (unweighted, class-weighted),
        each {variant: epoch mean}; the class-weighted dict is empty without `class_weight`. Both come
        from the same forward pass of a variant, so they differ only by the weights.

        Each batch runs every variant in one traced step. Layer calls are memoized within the trace
        (same layer, same input tensors, same effective `training`, same forced layers below it), so
        what two variants have in common is computed once: with Dropout only in the head, the
        all-training and BatchNorm-only variants share the whole convolutional trunk. Each variant runs
        in its own Keras StatelessScope starting from the same variable values, so none sees another's
        state updates (BatchNormalization moving statistics are never written) and every variant draws
        the same random numbers it would draw in a pass of its own; the seed states then advance once
        per batch, as in a separate pass. Any other state a call updates (stateful RNN states, a custom
        layer's variables; not BatchNormalization statistics, which only a BatchNormalization in
        inference mode reads and only one in training mode writes) is carried from batch to batch
        within each variant, as fit carries it, every variant from the saved values. Figures are
        identical to separate passes. Everything is put back afterwards. `draw` > 0 shifts every seed:
        other random draws, for the spread of the random layers' figures.
        """
        model = self.model
        variants = list(dict.fromkeys(families))
        forced = {f: [] if f in (None, "inference") else list(getattr(self.families, f)) for f in variants}
        held_off = self.families.known()
        weighted = bool(class_weight)
        keras.utils.set_random_seed(self.seed + draw)
        seed_ids = {id(sg.state) for layer in [model, *all_layers(model)]
                    for sg in getattr(layer, "_seed_generators", None) or []}
        bn_ids = {id(v) for layer in all_layers(model) if isinstance(layer, BN_TYPES)
                  for v in getattr(layer, "non_trainable_variables")}  # noqa: B009 - typed as object
        non_trainable = call_state_variables(model)
        carried = [(i, v) for i, v in enumerate(non_trainable) if id(v) not in seed_ids | bn_ids]
        with _VariantCalls(model, [v for _, v in carried]) as calls, forced_training(model, [], True):
            trainable = list(model.trainable_variables)
            seeds = [(i, v) for i, v in enumerate(non_trainable) if id(v) in seed_ids]
            # each variant's own copy of the carried state, from the saved values
            own = [[keras.Variable(np.array(v), dtype=v.dtype, trainable=False) for _, v in carried]
                   for _ in variants]
            if draw:  # other random draws: shift every layer's seed (restored with the other variables)
                for _, var in seeds:
                    state = np.array(var)
                    state.flat[0] = state.flat[0] + 7919 * draw
                    var.assign(state)

            tensorflow = is_tensorflow()
            if tensorflow:
                def batch_mean(t):
                    return tf.reduce_mean(tf.cast(t, tf.float64))
            else:  # JAX computes in float32 unless x64 is enabled
                def batch_mean(t):
                    return ops.mean(ops.cast(t, "float32"))

            def step(x, y, sw, cw):
                calls.reset()
                if tensorflow:
                    t_values = [tf.identity(v.value) for v in trainable]
                    n_values = [tf.identity(v.value) for v in non_trainable]
                else:  # inside compile_step's own scope: the traced values
                    t_values = [v.value for v in trainable]
                    n_values = [v.value for v in non_trainable]
                mapping = list(zip(trainable, t_values, strict=True)) + list(zip(non_trainable, n_values, strict=True))
                losses: list[Any] = []
                advanced: dict[int, Any] = {}
                for k, f in enumerate(variants):
                    outer = f is None
                    calls.force(forced[f], () if f in (None, "inference") else held_off)
                    mine = [(var, held.value) for (_, var), held in zip(carried, own[k], strict=True)]
                    # the variant's own carried values override the shared ones (later entries win)
                    with keras.StatelessScope(state_mapping=mapping + mine, collect_losses=True) as scope:
                        pred = model(x, training=outer)
                        loss = model._compute_loss(x=x, y=y, y_pred=pred, sample_weight=sw, training=outer)
                        # a reduction="none" loss is a vector: Keras's tracker records its mean
                        losses.append(batch_mean(loss))
                        if cw is not None:
                            loss = model._compute_loss(x=x, y=y, y_pred=pred, sample_weight=cw, training=outer)
                            losses.append(batch_mean(loss))
                    for i, var in seeds:
                        new = scope.get_current_value(var)
                        if new is not None and new is not n_values[i]:
                            advanced.setdefault(i, new)
                    for held, (var, value) in zip(own[k], mine, strict=True):
                        new = scope.get_current_value(var)
                        if new is not None and new is not value:
                            held.assign(new)
                calls.force([])
                for i, var in seeds:  # a separate pass advances each seed once per batch
                    if i in advanced:
                        var.assign(advanced[i])
                return ops.stack(losses)

            step = compile_step(step, [*trainable, *non_trainable, *(c for copies in own for c in copies)])
            width = 2 if weighted else 1
            means = [EpochMean() for _ in range(width * len(variants))]
            batches: list[tuple[int, dict]] = []
            for start, stop, xs, ys, sw in self._batches(limit):
                cw = self._class_weighted(ys, sw, class_weight) if weighted else None
                if not batches:
                    build_state(model, _structure(xs), _structure(ys), sw)
                values = np.asarray(step(_structure(xs), _structure(ys), sw, cw))
                for m, v in zip(means, values, strict=True):
                    m.add(float(v), stop - start)
                batches.append((stop - start, {f: float(values[width * i]) for i, f in enumerate(variants)}))
        self.last_batches = batches  # (n_b, variant -> unweighted batch loss) of this pass, in order
        plain = {f: means[width * i].value for i, f in enumerate(variants)}
        cw_means = {f: means[width * i + 1].value for i, f in enumerate(variants)} if weighted else {}
        return plain, cw_means

    def evaluate_float32(self) -> float | None:
        """evaluate (all data) of an in-memory copy of the model whose dtype policies are all float32,
        with the same weights and losses; None when the model computes in float32 anyway or cannot
        be copied (see float32_copy)."""
        if not low_precision_layers(self.model):
            return None
        copy = float32_copy(self.loaded)
        if copy is None:
            return None
        return Prober(copy, self.data, self.batch_size, self.seed).inference_loss()

    @data_errors
    def inference_loss(self, class_weight=None, limit: int | None = None) -> float:
        """evaluate-like loss (all inference) with optional class weights and sample limit; the state a
        call updates is put back afterwards."""
        with assigned_back(call_state_variables(self.model)):
            return self._inference_loss(class_weight, limit)

    def _inference_loss(self, class_weight, limit: int | None) -> float:
        model = self.model

        def step(x, y, sw):
            pred = model(x, training=False)
            return model._compute_loss(x=x, y=y, y_pred=pred, sample_weight=sw, training=False)

        mean = EpochMean()
        compiled = None
        for start, stop, xs, ys, sw in self._batches(limit, class_weight):
            if compiled is None:
                build_state(model, _structure(xs), _structure(ys), sw)
                compiled = compile_step(step, [*model.trainable_variables, *call_state_variables(model)])
            mean.add(float(np.mean(compiled(_structure(xs), _structure(ys), sw))), stop - start)
        return mean.value


LOW_PRECISION = ("float16", "bfloat16")


def low_precision_layers(model) -> list[Any]:
    """Layers that compute in float16/bfloat16 (a mixed_float16/mixed_bfloat16 policy, global or per layer)."""
    return [lyr for lyr in all_layers(model) if str(getattr(lyr, "compute_dtype", "")) in LOW_PRECISION]


def _float32_policies(node: Any) -> Any:
    """The serialized config with every low-precision or mixed dtype policy replaced by "float32"."""
    if isinstance(node, list):
        return [_float32_policies(v) for v in node]
    if not isinstance(node, dict):
        return node
    out = {}
    for key, value in node.items():
        if key == "dtype" and isinstance(value, dict) and "DTypePolicy" in str(value.get("class_name", "")):
            name = str((value.get("config") or {}).get("name", ""))
            out[key] = "float32" if ("mixed" in name or name in LOW_PRECISION) else value
        elif key == "dtype" and isinstance(value, str) and ("mixed" in value or value in LOW_PRECISION):
            out[key] = "float32"
        else:
            out[key] = _float32_policies(value)
    return out


def float32_copy(loaded):
    """A new model from the loaded one's config with float32 policies, the loaded weights (variables of
    mixed policies are float32 already) and the same losses, compiled without optimizer; the loaded
    model is not touched. None when the config does not rebuild (e.g. a subclassed model without
    get_config) or the weights do not fit."""
    import dataclasses

    model = loaded.model
    try:
        config = _float32_policies(keras.saving.serialize_keras_object(model))
        with keras.saving.custom_object_scope(dict(loaded.custom_objects or {})):
            copy = keras.saving.deserialize_keras_object(config, safe_mode=not loaded.unsafe)
        copy.set_weights([np.asarray(w, np.float32) if np.asarray(w).dtype.kind == "f" else np.asarray(w)
                          for w in model.get_weights()])
        outputs = loaded.output_names
        losses = [loaded.losses.get(o) for o in outputs]
        weights = [loaded.loss_weights.get(o, 1.0) for o in outputs]
        copy.compile(loss=losses if len(outputs) > 1 else losses[0],
                     loss_weights=weights if len(outputs) > 1 else weights[0])
    except Exception:  # noqa: BLE001 - the float32 figure is optional: no copy, no figure
        return None
    if low_precision_layers(copy):
        return None
    return dataclasses.replace(loaded, model=copy)


def _validation_data(val: Dataset | None, batch_size: int):
    """fit's validation_data: (x, y[, sample_weight]) arrays, or batches read from an h5 file."""
    if val is None:
        return None
    if val.streamed:
        return _H5Sequence(val, batch_size)
    xs, ys, sw = val.slice(0, val.n)
    return (_structure(xs), _structure(ys)) if sw is None else (_structure(xs), _structure(ys), sw)


@data_errors
def fit_epoch(model, data: Dataset, batch_size: int, class_weight=None, seed: int = 0,
              validation: Dataset | None = None, logs: dict[str, float] | None = None) -> float | None:
    """What model.fit(x, y, batch_size, epochs=1, shuffle=False, sample_weight, class_weight) reports as
    `loss` (None when the model's own train_step logs no `loss`), on `model` (which it changes: see
    fit_epoch_restoring). With `validation`, fit also evaluates it after the epoch
    (validation_data=..., validation_batch_size = batch_size); `logs` receives the epoch's scalar logs
    (loss, val_loss, the model's own keys, ...)."""
    keras.utils.set_random_seed(seed)
    val = _validation_data(validation, batch_size)
    if getattr(data, "pipeline", False):  # fit consumes the pipeline itself, with its own batching
        pipeline: Any = data
        history = model.fit(pipeline.keras_input(), epochs=1, shuffle=False, class_weight=class_weight, verbose=0,
                            validation_data=val)
    elif data.streamed:
        seq = _H5Sequence(data, batch_size, class_weight)
        history = model.fit(seq, epochs=1, shuffle=False, verbose=0, validation_data=val)
    else:
        xs, ys, sw = data.slice(0, data.n)
        history = model.fit(_structure(xs), _structure(ys), batch_size=batch_size, epochs=1, shuffle=False,
                            sample_weight=sw, class_weight=class_weight, verbose=0, validation_data=val)
    if logs is not None:
        logs.update({k: float(np.asarray(v[-1])) for k, v in history.history.items()
                     if v and np.asarray(v[-1]).size == 1})
    loss = history.history.get("loss")
    return float(loss[-1]) if loss else None


def fit_epoch_restoring(model, data: Dataset, batch_size: int, class_weight=None, seed: int = 0,
                        validation: Dataset | None = None, logs: dict[str, float] | None = None) -> float | None:
    """`fit_epoch` on the loaded model itself instead of a second copy from the file, then every variable
    it touched is put back (weights, BatchNormalization statistics, stateful RNN states, seed states,
    optimizer and metric state), so the model is left as loaded. Spares a second load; the figure is the
    one a fresh copy gives, since every other pass leaves the model exactly as loaded and the fit starts
    from the same weights, layer state, optimizer state and layer seeds."""
    optimizer = model.optimizer
    if optimizer is not None and not optimizer.built:
        optimizer.build(model.trainable_variables)  # what fit's first step does; its state then is saved too
    with assigned_back(state_variables(model)):
        return fit_epoch(model, data, batch_size, class_weight, seed, validation, logs)


class _H5Sequence(keras.utils.PyDataset):
    """Batches read from an h5 file on demand (the file may be larger than memory)."""

    def __init__(self, data: Dataset, batch_size: int, class_weight=None) -> None:
        super().__init__()
        self.data, self.batch_size, self.class_weight = data, batch_size, class_weight
        self.bounds = list(data.batch_bounds(batch_size))

    def __len__(self) -> int:
        return len(self.bounds)

    def __getitem__(self, i: int):
        xs, ys, sw = self.data.slice(*self.bounds[i])
        if self.class_weight:
            sw = class_weight_sample_weights(ys[0], self.class_weight)
        # tuples, not lists: PyDataset builds its output signature from the first batch, and a list of
        # arrays there is not a valid structure (multi-input/-output models on h5 data failed)
        x = xs[0] if len(xs) == 1 else tuple(xs)
        y = ys[0] if len(ys) == 1 else tuple(ys)
        return (x, y) if sw is None else (x, y, sw)
