"""Measurements of one area: evaluate re-measured under other execution settings (`--parity`)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from losscheck.measurements.multiprocess import MultiProcessMeasurements


def _empty() -> Mapping[str, Any]:
    return MappingProxyType({})


@dataclass(frozen=True)
class ParityMeasurements:
    """evaluate under each setting `--parity` asked for, next to the run's own.

    backend: the backend the run's figures come from; evaluate: its evaluate figure.
    backends: other backend -> Keras's evaluate on it (a subprocess); backend_errors: other backend ->
      why it could not be measured.
    fit_epoch: the run's fit_epoch (None when not compared); fits: other backend -> the fit probe's
      one-epoch fit on it (the same subprocess); random_layers: the layers whose training behaviour draws
      random numbers (Dropout, noise), which each backend draws from its own generator.
    jit / nojit: Keras's evaluate with jit_compile=True / False (None when not measured).
    float32: evaluate of a float32 copy of a mixed-precision model (None when not measured or the model
      computes in float32); low_precision: the compute dtypes below float32 ("float16", "bfloat16").
    logits_shortcut: TensorFlow's crossentropy used the logits of an output (its figure differs from
      the clipped probabilities other backends use); add_loss: the model adds losses in call()
      (add_loss), which each backend's trainer collects in its own way.
    distributed: Keras's evaluate under `--distribute` over `replicas` replicas (None when not asked);
    fit_distributed / fit_one_device: Keras's one-epoch fit under the strategy / of a copy on one device;
    batchnorm: the trainable BatchNormalization layers, which normalize each replica's part of a batch
    with that part's statistics in fit.
    multiprocess: the multi-process run (`--distribute multi-process`), None otherwise."""

    backend: str
    evaluate: float
    backends: Mapping[str, float] = field(default_factory=_empty)
    backend_errors: Mapping[str, str] = field(default_factory=_empty)
    fit_epoch: float | None = None
    fits: Mapping[str, float] = field(default_factory=_empty)
    random_layers: tuple[str, ...] = ()
    jit: float | None = None
    nojit: float | None = None
    float32: float | None = None
    low_precision: tuple[str, ...] = ()
    logits_shortcut: bool = False
    add_loss: bool = False
    distributed: float | None = None
    replicas: int = 1
    fit_distributed: float | None = None
    fit_one_device: float | None = None
    batchnorm: tuple[str, ...] = ()
    multiprocess: MultiProcessMeasurements | None = None
