"""`--distribute mirrored`: the model loaded under tf.distribute.MirroredStrategy over the visible
devices (every GPU, else every logical CPU device), so Keras's own fit and evaluate split each batch
across the replicas; the other probes read the mirrored variables and give the one-device figures.
On JAX the same option uses Keras's DataParallel distribution over every JAX device."""

from __future__ import annotations

import contextlib
import functools
from typing import Any

from losscheck._tf import keras, tf
from losscheck.core.errors import UsageError


def strategy_for(name: str | None) -> Any:
    """The tf.distribute strategy `--distribute NAME` asks for, or None. One per process: two
    MirroredStrategy objects over the same devices would share collective-op instance keys."""
    if name is None or name == "multi-process":  # multi-process: probes/multiprocess.py
        return None
    if keras.backend.backend() == "jax":
        return _data_parallel()
    if keras.backend.backend() != "tensorflow":
        raise UsageError(f"--distribute {name} needs the tensorflow backend (MirroredStrategy) or jax "
                         f"(DataParallel); this run is on {keras.backend.backend()}")
    return _mirrored()


class _JaxDataParallel:
    """Keras's DataParallel distribution over every JAX device, with the strategy attributes the report
    reads (num_replicas_in_sync, extended.worker_devices) and scope()."""

    def __init__(self) -> None:
        import types

        import jax

        devices = [f"{d.platform}:{d.id}" for d in jax.devices()]
        self.distribution = keras.distribution.DataParallel(devices=devices)
        self.num_replicas_in_sync = len(devices)
        self.extended = types.SimpleNamespace(worker_devices=devices)

    @contextlib.contextmanager
    def scope(self):
        previous = keras.distribution.distribution()
        keras.distribution.set_distribution(self.distribution)
        try:
            yield
        finally:
            keras.distribution.set_distribution(previous)


@functools.cache
def _data_parallel() -> Any:
    return _JaxDataParallel()


@functools.cache
def _mirrored() -> Any:
    devices = [d.name for d in tf.config.list_logical_devices("GPU")] or [
        d.name for d in tf.config.list_logical_devices("CPU")]
    return tf.distribute.MirroredStrategy(devices=devices)


def scope(strategy: Any) -> Any:
    """strategy.scope(), or nothing without a strategy."""
    return contextlib.nullcontext() if strategy is None else strategy.scope()
