"""Which parts of Keras's training loop a model replaces with its own code, and where its loss comes from.

Static: looks at the model's class (and instance), never runs it. A method counts as the user's when
the class that defines it, first in the method resolution order, lives outside Keras (a subclass of
keras.Model such as keras-io's "customizing fit()" models, GANs, VAEs, siamese networks).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

#: the training-loop methods a model may override, in the order Keras calls them
STEP_METHODS = ("train_step", "test_step", "compute_loss", "compute_metrics")
_KERAS_MODULES = ("keras.", "keras_core.", "tensorflow.", "tf_keras.")


def custom_steps(model: Any) -> tuple[str, ...]:
    """The STEP_METHODS that `model` defines in its own code (its class or an instance attribute)."""
    found = []
    for name in STEP_METHODS:
        if name in getattr(model, "__dict__", {}):
            found.append(name)
            continue
        for cls in type(model).__mro__:
            if name in vars(cls):
                if not str(cls.__module__).startswith(_KERAS_MODULES):
                    found.append(name)
                break
    return tuple(found)


def adds_losses(model: Any) -> bool:
    """Some layer (or the model itself) has an activity regularizer, or its call() or a method of its
    own class refers to add_loss: the model may have losses besides its compiled ones."""
    layers = [model, *model._flatten_layers(include_self=False, recursive=True)]
    for layer in layers:
        if getattr(layer, "activity_regularizer", None) is not None:
            return True
        if any("add_loss" in code.co_names for code in _own_code(type(layer))):
            return True
    return False


def _own_code(cls: type) -> list[Any]:
    """The code of cls.call and of every function the classes outside Keras in its MRO define (a helper
    method call() uses may be the one that adds a loss)."""
    found = []
    call = getattr(getattr(cls, "call", None), "__code__", None)
    if call is not None:
        found.append(call)
    for klass in cls.__mro__:
        if klass is object or str(klass.__module__).startswith(_KERAS_MODULES):
            continue
        for value in vars(klass).values():
            code = getattr(value, "__code__", None)
            if code is not None:
                found.append(code)
    return found


@dataclass(frozen=True)
class LoopFacts:
    """How a model's training loop departs from Keras's default one, and what that means for the figures.

    steps: the STEP_METHODS the model overrides; compiled_loss: some output has a compiled loss;
    add_loss: some layer may add losses (add_loss, activity regularizers)."""

    steps: tuple[str, ...] = ()
    compiled_loss: bool = True
    add_loss: bool = False

    @classmethod
    def of(cls, model: Any, compiled_loss: bool) -> LoopFacts:
        return cls(custom_steps(model), compiled_loss, adds_losses(model))

    @property
    def customized(self) -> bool:
        """evaluate and fit are not the compiled loss alone: Keras's own figures are measured by running them."""
        return bool(self.steps) or not self.compiled_loss

    @property
    def keras_loss(self) -> bool:
        """Keras's compute_loss has something to compute (a compiled loss, add_loss terms, or the model's own
        compute_loss): the inference and training-mode passes compute the loss through it."""
        return self.compiled_loss or self.add_loss or "compute_loss" in self.steps

    @property
    def training_mode_comparable(self) -> bool:
        """The training-mode passes compute what evaluate computes, only in training behaviour: the
        model's test_step is Keras's and compute_loss has a loss to compute."""
        return "test_step" not in self.steps and self.keras_loss

    @property
    def manual_applies(self) -> bool:
        """The numpy recomputation of the compiled loss is what evaluate reports (no overridden test_step or
        compute_loss, and a compiled loss to recompute)."""
        return self.compiled_loss and not {"test_step", "compute_loss"} & set(self.steps)

    @property
    def decomposable(self) -> bool:
        """fit - evaluate splits into measured causes: fit and evaluate run Keras's own train and test steps."""
        return not {"train_step", "test_step"} & set(self.steps)
