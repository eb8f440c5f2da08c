"""Which Keras 2 (tf.keras) loss semantics differ from Keras 3's for one loaded model, and the model
facts the rules read (the `legacy-keras` rule is losscheck.rules.legacy). Static: looks at the model,
never runs it."""

from __future__ import annotations

from typing import Any

from losscheck.core.taxonomy import LAST_AXIS_MEAN_KINDS, builtin_name, rate_of
from losscheck.measurements.model import ModelFacts

_REG_ATTRS = ("kernel_regularizer", "bias_regularizer", "depthwise_regularizer", "pointwise_regularizer",
              "recurrent_regularizer", "beta_regularizer", "gamma_regularizer", "embeddings_regularizer")
_ELEMENTWISE = LAST_AXIS_MEAN_KINDS


def _fn_name(loss: Any) -> str | None:
    if isinstance(loss, str):
        return builtin_name(loss)
    fn = getattr(loss, "fn", None)
    return getattr(fn, "__name__", None) if fn is not None else None


def _output_layer(model, index: int):
    outputs = list(getattr(model, "outputs", None) or [])
    if index >= len(outputs):
        return None
    history = getattr(outputs[index], "_keras_history", None)
    return getattr(history, "operation", None)


def _ends_in_sigmoid(layer) -> bool:
    act = getattr(layer, "activation", None)
    return getattr(act, "__name__", "") == "sigmoid"


def _layers(model) -> list[Any]:
    try:
        return list(model._flatten_layers(include_self=False, recursive=True))
    except Exception:  # noqa: BLE001 - a model without Keras 3's layer walk: its direct layers
        return list(getattr(model, "layers", []))


def _acts_in_training(layer) -> bool:
    """Does the layer behave differently under training=True (a frozen BatchNormalization does not)?"""
    name = type(layer).__name__
    if name == "BatchNormalization":
        return bool(layer.trainable)
    if name in ("Dropout", "SpatialDropout1D", "SpatialDropout2D", "SpatialDropout3D", "GaussianDropout",
                "AlphaDropout"):
        return rate_of(layer, "rate") > 0
    if name == "GaussianNoise":
        return rate_of(layer, "stddev") > 0
    return any(rate_of(layer, a) > 0 for a in ("dropout", "recurrent_dropout"))


def _nested_called_in_inference(model) -> list[str]:
    """Nested models called with an explicit training=False that hold Dropout/BatchNormalization."""
    out = []
    for layer in getattr(model, "layers", []):
        if not hasattr(layer, "layers"):
            continue
        explicit = False
        for node in getattr(layer, "_inbound_nodes", []) or []:
            kwargs = getattr(getattr(node, "arguments", None), "kwargs", None) or {}
            if kwargs.get("training") is False:
                explicit = True
        if explicit and any(_acts_in_training(sub) for sub in _layers(layer)):
            out.append(layer.name)
    return out


def keras2_differences(loaded) -> list[tuple[str, bool]]:
    """(clause, changes the evaluate figure) for each Keras 2/3 difference that applies to this model."""
    model = loaded.model
    found: list[tuple[str, bool]] = []
    for i, out in enumerate(loaded.output_names):
        loss = loaded.losses.get(out)
        if loss is None:
            continue
        fn = _fn_name(loss)
        from_logits = bool((getattr(loss, "_fn_kwargs", {}) or {}).get("from_logits", False))
        if fn in ("binary_crossentropy", "binary_focal_crossentropy") and not from_logits:
            if not _ends_in_sigmoid(_output_layer(model, i)):
                found.append((f"output {out!r} feeds probabilities that no sigmoid produced to binary crossentropy: "
                             "Keras 2 computes log(clip(p)+eps), Keras 3 log(clip(p)), so evaluate differs wherever "
                             "a prediction comes within ~1e-7 of 0 or 1 or leaves [0, 1] (a saturated element "
                             "costs 15.42 in Keras 2, 16.12 in Keras 3)", True))
        if getattr(loss, "reduction", "sum_over_batch_size") in ("none", None):
            found.append((f"output {out!r} uses reduction=\"none\": Keras 2 averaged each batch's loss vector with "
                          "the batch size broadcast as its weight, so its epoch figure weights batches by n_b squared; "
                          "Keras 3 takes the plain mean (the two differ when the last batch is partial)", True))
        outputs = list(getattr(model, "outputs", None) or [])
        if i < len(outputs) and len(outputs[i].shape) > 2 and fn in _ELEMENTWISE:
            found.append((f"output {out!r} has per-element losses of rank {len(outputs[i].shape) - 1}: with a "
                          "sample_weight of shape (n,), Keras 2 weighted whole samples while Keras 3 broadcasts it "
                          "along the last axis (or fails); weights of shape (n, 1, ...) mean the same in both", True))
    frozen = [lyr.name for lyr in _layers(model)
              if not lyr.trainable and any(getattr(lyr, a, None) is not None for a in _REG_ATTRS)]
    if frozen:
        found.append((f"frozen layer(s) {', '.join(frozen)} carry weight regularizers: Keras 2 adds their penalties "
                     "to the loss, Keras 3 drops them, so Keras 2's evaluate was higher by those penalties", True))
    if any(getattr(lyr, "mask_zero", False) or type(lyr).__name__ == "Masking" for lyr in _layers(model)):
        found.append(("the model masks timesteps: a batch whose entries are all masked gives NaN in Keras 2 and 0 "
                      "in Keras 3", True))
    nested = _nested_called_in_inference(model)
    if nested:
        found.append((f"nested model(s) {', '.join(nested)} are called with training=False: Keras 2 honours that in "
                     "fit, Keras 3 overrides it, so their Dropout/BatchNormalization act in Keras 3's fit only", False))
    if sum(1 for v in loaded.losses.values() if v is not None) > 1:
        found.append(("the per-output <output>_loss logs: Keras 2 weights batches by their size, compiled Keras 3 "
                      "does not (the total loss is the same)", False))
    return found


def model_facts(loaded) -> ModelFacts:
    """The plain facts the rules read about the loaded model (the Keras 2/3 differences only for a
    file saved by tf.keras 2.x)."""
    legacy = bool(loaded.info.legacy)
    return ModelFacts(output_names=tuple(loaded.output_names), legacy=legacy, saved_by=str(loaded.info.saved_by),
                      keras2_differences=tuple(keras2_differences(loaded)) if legacy else ())
