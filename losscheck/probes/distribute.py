"""`--distribute mirrored`: the model loaded under tf.distribute.MirroredStrategy over the visible
devices (every GPU, else every logical CPU device), so Keras's own fit and evaluate split each batch
across the replicas; the other probes read the mirrored variables and give the one-device figures."""

from __future__ import annotations

import contextlib
import functools
from typing import Any

from losscheck._tf import keras, tf
from losscheck.errors import UsageError

DISTRIBUTIONS = ("mirrored",)


def strategy_for(name: str | None) -> Any:
    """The tf.distribute strategy `--distribute NAME` asks for, or None. One per process: two
    MirroredStrategy objects over the same devices would share collective-op instance keys."""
    if name is None:
        return None
    if keras.backend.backend() != "tensorflow":
        raise UsageError(f"--distribute {name} runs tf.distribute.MirroredStrategy, which needs the tensorflow "
                         f"backend (this run is on {keras.backend.backend()}); use --backend tensorflow")
    return _mirrored()


@functools.cache
def _mirrored() -> Any:
    devices = [d.name for d in tf.config.list_logical_devices("GPU")] or [
        d.name for d in tf.config.list_logical_devices("CPU")]
    return tf.distribute.MirroredStrategy(devices=devices)


def scope(strategy: Any) -> Any:
    """strategy.scope(), or nothing without a strategy."""
    return contextlib.nullcontext() if strategy is None else strategy.scope()
