"""The model's layers by how `training` changes them: the layer families (Dropout, BatchNormalization,
noise and augmentation, other layers whose call takes `training`), the layers a nested model's stored
training=False does not hold in fit, the regularized layers; and `forced_training`, which makes chosen
layers run in training or inference mode whatever the outer call says.

Training-mode passes force `training` per layer by shadowing `layer.call` on the instance (works at
any nesting depth, frozen bases included) and restore every non-trainable variable afterwards
(BatchNormalization moving statistics, RNG seed states), so the model is left exactly as loaded.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from losscheck._tf import keras
from losscheck.core.taxonomy import BUILTIN_FAMILIES, FAMILIES, FROZEN_BATCHNORM, STOCHASTIC_FAMILIES, rate_of
from losscheck.loading.memory import assigned_back, call_state_variables

L = keras.layers
DROPOUT_TYPES: tuple[type, ...] = (L.Dropout,)  # SpatialDropout* subclass Dropout
NOISE_TYPES: tuple[type, ...] = tuple(
    getattr(L, n) for n in ("GaussianNoise", "GaussianDropout", "AlphaDropout") if hasattr(L, n)
)
BN_TYPES: tuple[type, ...] = (L.BatchNormalization,)


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


#: the layer attributes that hold a regularizer
REGULARIZER_ATTRS = ("kernel_regularizer", "bias_regularizer", "activity_regularizer", "depthwise_regularizer",
                     "pointwise_regularizer", "recurrent_regularizer", "beta_regularizer", "gamma_regularizer",
                     "embeddings_regularizer")


def regularized_layers(model: Any) -> list[str]:
    """Trainable layers with a weight or activity regularizer (Keras 3 drops frozen layers' penalties)."""
    out = []
    for layer in all_layers(model):
        regs = [getattr(layer, a, None) for a in REGULARIZER_ATTRS]
        if any(r is not None for r in regs) and (layer.trainable or getattr(layer, "activity_regularizer", None)):
            out.append(layer.name)
    return out
