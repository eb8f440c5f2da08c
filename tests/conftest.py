"""Shared test helpers. Tests that import TensorFlow are marked `keras`; the rest run in milliseconds."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "fixtures"


def pytest_addoption(parser):
    parser.addoption("--run-slow", action="store_true", help="also run the tests marked slow")


def pytest_collection_modifyitems(config, items):
    """Leave out tests marked `slow` unless asked for: --run-slow, LOSSCHECK_RUN_SLOW=1, or a -m
    expression that names `slow` (e.g. -m slow). A -m without it (e.g. -m "not keras") keeps them out."""
    if config.getoption("--run-slow") or os.environ.get("LOSSCHECK_RUN_SLOW") == "1":
        return
    if "slow" in (config.getoption("markexpr") or ""):
        return
    slow = [item for item in items if item.get_closest_marker("slow")]
    if slow:
        config.hook.pytest_deselected(items=slow)
        items[:] = [item for item in items if not item.get_closest_marker("slow")]


def fixture_files(name: str) -> tuple[Path, Path]:
    d = FIXTURES / name
    model = next(p for p in sorted(d.iterdir()) if p.name.startswith("model."))
    return model, d / "data.npz"


def sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


class CliResult:
    def __init__(self, code: int, stdout: str, stderr: str) -> None:
        self.code, self.stdout, self.stderr = code, stdout, stderr

    @property
    def json(self) -> dict:
        return json.loads(self.stdout)


def run_cli(*args: str) -> CliResult:
    """Run the CLI in-process (TensorFlow is imported once per test session)."""
    from click.testing import CliRunner

    from losscheck.cli import main

    result = CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)
    return CliResult(result.exit_code, result.stdout, result.stderr)


@pytest.fixture(scope="session")
def cli():
    return run_cli


def load_npz(path: Path) -> dict:
    import numpy as np

    with np.load(path, allow_pickle=False) as f:
        return {k: f[k] for k in f.files}


def rel(a: float, b: float) -> float:
    return abs(a - b) / max(abs(b), 1e-12)


def assert_same_training(plain_model, plain_history, model, history) -> None:
    """Two fits trained alike: the same history, weights and optimizer state, exactly."""
    import numpy as np

    assert history.history == plain_history.history
    for a, b in zip(plain_model.get_weights(), model.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    for a, b in zip(plain_model.optimizer.variables, model.optimizer.variables, strict=True):
        np.testing.assert_array_equal(np.array(a), np.array(b))


def seeded_prober(model_path, data_path, batch_size=16):
    """(loaded model, data, Prober) of a saved model and data file, Keras seeded as --seed 0."""
    from losscheck._tf import keras
    from losscheck.loading.data import load_data
    from losscheck.loading.inputs import input_names
    from losscheck.loading.model import load_model
    from losscheck.probes.prober import Prober

    keras.utils.set_random_seed(0)
    loaded = load_model(model_path)
    data = load_data(data_path, input_names(loaded.model), loaded.output_names)
    return loaded, data, Prober(loaded, data, batch_size, 0)


def fit_until(model, x, y, batch_size, epoch, batch):
    """`model` as Keras's own fit (seed 0, no shuffle) leaves it just before batch `batch` of epoch `epoch`
    (both counted from 0)."""
    import keras

    class StopBefore(keras.callbacks.Callback):
        def on_epoch_begin(self, e, logs=None):
            self.e = e

        def on_train_batch_end(self, b, logs=None):
            if (self.e, b + 1) == (epoch, batch):
                self.model.stop_training = True

    keras.utils.set_random_seed(0)
    if batch > 0 or epoch > 0:
        model.fit(x, y, batch_size=batch_size, epochs=epoch + (1 if batch > 0 else 0), shuffle=False, verbose=0,
                  callbacks=[StopBefore()])
    return model


def first_nonfinite_layer(model, xb):
    """The name of the first layer of a plain chain `model` whose training-mode output on the batch `xb` is
    non-finite, in call order; None when every output is finite."""
    import numpy as np

    h = xb
    for layer in model.layers[1:]:
        h = layer(h, training=True)
        if not np.all(np.isfinite(np.asarray(h))):
            return layer.name
    return None


def tape_step(model, xb, yb):
    """One training step of a compiled `model` on the batch (xb, yb) by hand (TensorFlow): the training-mode
    loss under a GradientTape, then the optimizer's update when every gradient is finite. Returns (loss,
    path of the first variable whose gradient is non-finite or None, path of the first variable non-finite
    after the update or None), variables in `trainable_variables` order."""
    import numpy as np
    import tensorflow as tf

    variables = model.trainable_variables
    with tf.GradientTape() as tape:
        loss = model.compute_loss(x=xb, y=yb, y_pred=model(xb, training=True), training=True)
    grads = tape.gradient(loss, variables)
    bad_grad = next((v.path for v, g in zip(variables, grads, strict=True) if not np.all(np.isfinite(g))), None)
    if bad_grad is not None:
        return float(loss), bad_grad, None
    model.optimizer.apply(grads, variables)
    return float(loss), None, next((v.path for v in variables if not np.all(np.isfinite(np.asarray(v)))), None)
