"""The speed-ups of issue 7 change no figure: the combined training-mode pass equals one pass per
variant (the pre-issue-7 implementation, kept here as the reference), and the fit on the loaded model
with its state restored equals the fit on a fresh copy. Real Keras, small models; marked slow."""

from __future__ import annotations

import numpy as np
import pytest

from tests.conftest import seeded_prober

pytestmark = [pytest.mark.keras, pytest.mark.slow]


def _separate_pass(prober, family, class_weight=None):
    """One pass per variant, as losscheck did before the passes were combined."""
    from losscheck._tf import keras, tf
    from losscheck.probes.batching import structure
    from losscheck.probes.layers import forced_training
    from losscheck.reference import EpochMean

    model = prober.model
    outer = family is None
    layers = [] if family in (None, "inference") else getattr(prober.families, family)
    keras.utils.set_random_seed(prober.seed)
    with forced_training(model, layers, True):

        @tf.function(reduce_retracing=True)
        def step(x, y, sw):
            pred = model(x, training=outer)
            return model._compute_loss(x=x, y=y, y_pred=pred, sample_weight=sw, training=outer)

        mean = EpochMean()
        for start, stop, xs, ys, sw in prober.batches(class_weight=class_weight):
            mean.add(float(step(structure(xs), structure(ys), sw)), stop - start)
    return mean.value


def _models():
    import keras
    from keras import layers

    def sequential():
        return keras.Sequential([
            keras.Input((8,)), layers.Dense(16), layers.BatchNormalization(), layers.Activation("relu"),
            layers.GaussianNoise(0.3), layers.Dense(16, activity_regularizer=keras.regularizers.L1(1e-2)),
            layers.Dropout(0.4), layers.Dense(3, activation="softmax"),
        ]), "categorical_crossentropy", (8,), 3

    def lstm():
        inp = keras.Input((5, 4))
        x = layers.BatchNormalization()(inp)
        x = layers.LSTM(8, dropout=0.3)(x)
        x = layers.Dropout(0.2)(x)
        return keras.Model(inp, layers.Dense(1)(x)), "mse", (5, 4), 1

    def nested():
        base_in = keras.Input((6,))
        b = layers.Dense(12, kernel_regularizer=keras.regularizers.L2(1e-2))(base_in)
        b = layers.BatchNormalization()(b)
        base = keras.Model(base_in, layers.Activation("relu")(b), name="base")
        inp = keras.Input((6,))
        x = base(inp)
        x = layers.Dropout(0.5)(x)
        x = layers.Dense(12)(x)
        x = layers.BatchNormalization()(x)
        return keras.Model(inp, layers.Dense(1, activation="sigmoid")(x)), "binary_crossentropy", (6,), 1

    return {"sequential": sequential, "lstm": lstm, "nested": nested}


@pytest.fixture(scope="module", params=["sequential", "lstm", "nested"])
def saved(request, tmp_path_factory):
    import keras

    keras.utils.set_random_seed(3)
    model, loss, shape, k = _models()[request.param]()
    model.compile(optimizer=keras.optimizers.Adam(1e-2), loss=loss)
    rng = np.random.default_rng(3)
    x = rng.normal(size=(100, *shape)).astype("float32") + 1.0
    if loss == "categorical_crossentropy":
        y = np.eye(k, dtype="float32")[rng.integers(0, k, size=100)]
    elif loss == "binary_crossentropy":
        y = rng.integers(0, 2, size=(100, 1)).astype("float32")
    else:
        y = rng.normal(size=(100, k)).astype("float32")
    model.fit(x[:40], y[:40], batch_size=16, epochs=1, verbose=0)
    d = tmp_path_factory.mktemp(request.param)
    model.save(d / "model.keras")
    np.savez(d / "data.npz", x=x, y=y)
    return d / "model.keras", d / "data.npz"


def test_combined_training_passes_equal_separate_passes(saved):
    loaded, _, prober = seeded_prober(*saved)
    variants = [None] + [f for f in ("dropout", "batchnorm", "noise") if getattr(prober.families, f)]
    before = [np.array(v) for v in loaded.model.variables]
    combined = prober.training_passes(variants + ["inference"])
    assert all(np.array_equal(a, np.array(b)) for a, b in zip(before, loaded.model.variables, strict=True))
    for f in variants + ["inference"]:
        assert combined[f] == _separate_pass(prober, f), f
    assert combined["inference"] == prober.inference_loss()


def test_fit_on_loaded_model_equals_fresh_copy(saved):
    from losscheck._tf import keras
    from losscheck.loading.model import reload_for_fit
    from losscheck.probes.fitting import fit_epoch, fit_epoch_restoring

    loaded, data, prober = seeded_prober(*saved)
    prober.training_passes([None])
    before = [np.array(v) for v in loaded.model.variables + loaded.model.optimizer.variables]
    keras.utils.set_random_seed(0)
    fresh = fit_epoch(reload_for_fit(loaded, False), data, 16, None, 0)
    assert fit_epoch_restoring(loaded.model, data, 16, None, 0) == fresh
    after = [np.array(v) for v in loaded.model.variables + loaded.model.optimizer.variables]
    assert all(np.array_equal(a, b) for a, b in zip(before, after, strict=True))
    assert fit_epoch_restoring(loaded.model, data, 16, None, 0) == fresh
