"""Semantic findings on real Keras models: each finding's magnitude is checked against the number a user
gets from Keras itself on predict() output, computed in the same test."""

from __future__ import annotations

import numpy as np
import pytest

pytestmark = pytest.mark.keras


def _inference(model, x, y, sw=None, batch_size=8):
    """losscheck's inference pass and semantic findings on an in-memory compiled model."""
    from types import SimpleNamespace

    from losscheck.loading.compile import LoadedModel
    from losscheck.loading.losses import resolve_loss
    from losscheck.measurements import Measurements, SemanticMeasurements, frozen_mapping
    from losscheck.probes.prober import Prober
    from losscheck.rules import judge_areas

    name = model.output_names[0]
    loaded = LoadedModel(model, None, [name], {name: resolve_loss(model.loss, {})}, {name: 1.0}, "memory", False)
    data = _Arrays(x, y, sw)
    prober = Prober(loaded, data, batch_size)
    inf = prober.inference_pass()
    sem = SemanticMeasurements.of(inf.semantic) if inf.semantic and inf.manual is not None else None
    figures = {"evaluate": inf.evaluate, **({"manual": inf.manual} if inf.manual is not None else {})}
    m = Measurements("compare", 1e-4, frozen_mapping(figures), semantics=sem)
    ctx = SimpleNamespace(sections={"natural_numpy": sem.section()} if sem else {})
    return inf, {f.code: f for f in judge_areas(m, ("semantics",))}, ctx


class _Arrays:
    def __init__(self, x, y, sw=None):
        self.x, self.y, self.sw, self.n = x, y, sw, len(x)

    def slice(self, start, stop):
        return [self.x[start:stop]], [self.y[start:stop]], None if self.sw is None else self.sw[start:stop]

    def batch_bounds(self, batch_size, limit=None):
        for start in range(0, self.n, batch_size):
            yield start, min(start + batch_size, self.n)


def test_logits_shortcut_on_saturated_softmax():
    import keras

    rng = np.random.default_rng(0)
    x = rng.normal(size=(24, 4)).astype("float32")
    y = rng.integers(0, 3, size=24)
    inp = keras.Input((4,))
    out = keras.layers.Dense(3, activation="softmax", name="out",
                             kernel_initializer=keras.initializers.RandomNormal(stddev=40.0))(inp)
    model = keras.Model(inp, out)
    model.compile("sgd", "sparse_categorical_crossentropy")
    evaluate = model.evaluate(x, y, batch_size=8, verbose=0)
    natural = float(keras.losses.SparseCategoricalCrossentropy()(y, model.predict(x, verbose=0)))
    inf, found, _ = _inference(model, x, y)
    assert inf.manual == pytest.approx(evaluate, rel=1e-5)
    assert evaluate > natural * 1.5  # saturated: the clipped numpy value is much smaller
    f = found["logits-shortcut"]
    assert f.magnitude == pytest.approx(evaluate - natural, rel=1e-4)
    assert "unexplained" not in found and "probability-clipping" not in found


def test_mask_normalizes_per_batch():
    import keras

    rng = np.random.default_rng(1)
    tokens = rng.integers(1, 6, size=(20, 6))
    lengths = rng.integers(1, 7, size=20)
    tokens[np.arange(6)[None, :] >= lengths[:, None]] = 0
    y = rng.integers(0, 2, size=(20, 6, 1)).astype("float32")
    inp = keras.Input((6,), dtype="int32")
    h = keras.layers.Embedding(6, 3, mask_zero=True)(inp)
    out = keras.layers.Dense(1, activation="sigmoid", name="out")(h)
    model = keras.Model(inp, out)
    model.compile("sgd", "binary_crossentropy")
    evaluate = model.evaluate(tokens, y, batch_size=8, verbose=0)
    probs = model.predict(tokens, verbose=0)
    natural = float(np.mean(keras.losses.binary_crossentropy(y, probs)))  # plain mean, mask ignored
    inf, found, ctx = _inference(model, tokens, y)
    assert inf.manual == pytest.approx(evaluate, rel=1e-5)
    assert found["mask"].magnitude == pytest.approx(evaluate - natural, abs=1e-5 * evaluate)
    assert ctx.sections["natural_numpy"]["no_masks"] == pytest.approx(natural, rel=1e-5)
    assert set(found) == {"mask"}


def test_clipping_when_rank_matching_squeezes_the_sigmoid_output():
    """(B,T,1) sigmoid outputs against (B,T) targets: Keras squeezes y_pred, which loses the cached
    logits, so it computes from clipped probabilities."""
    import keras

    rng = np.random.default_rng(3)
    x = rng.normal(size=(16, 5, 3)).astype("float32")
    y = rng.integers(0, 2, size=(16, 5)).astype("float32")
    inp = keras.Input((5, 3))
    z = keras.layers.Dense(1, name="z", kernel_initializer=keras.initializers.RandomNormal(stddev=60.0))(inp)
    out = keras.layers.Activation("sigmoid", name="out")(z)
    model = keras.Model(inp, out)
    model.compile("sgd", "binary_crossentropy")
    evaluate = model.evaluate(x, y, batch_size=8, verbose=0)
    logits = keras.Model(inp, z).predict(x, verbose=0)
    from_logits = float(np.mean(keras.losses.binary_crossentropy(y[..., None], logits, from_logits=True)))
    inf, found, _ = _inference(model, x, y)
    assert inf.manual == pytest.approx(evaluate, rel=1e-5)
    assert "logits-shortcut" not in found
    assert found["probability-clipping"].magnitude == pytest.approx(evaluate - from_logits, rel=1e-4)
    assert evaluate < from_logits  # clipping caps every saturated element at 16.1


def test_mixed_precision_softmax_loses_the_shortcut():
    import keras

    rng = np.random.default_rng(2)
    x = rng.normal(size=(16, 4)).astype("float32")
    y = np.eye(3, dtype="float32")[rng.integers(0, 3, size=16)]
    keras.config.set_dtype_policy("mixed_float16")
    try:
        inp = keras.Input((4,))
        out = keras.layers.Dense(3, activation="softmax", name="out",
                                 kernel_initializer=keras.initializers.RandomNormal(stddev=40.0))(inp)
        model = keras.Model(inp, out)
    finally:
        keras.config.set_dtype_policy("float32")
    model.compile("sgd", "categorical_crossentropy")
    evaluate = model.evaluate(x, y, batch_size=8, verbose=0)
    inf, found, _ = _inference(model, x, y)
    assert inf.manual == pytest.approx(evaluate, rel=1e-5)
    assert "logits-shortcut" not in found
    f = found["mixed-precision"]
    assert f.magnitude < 0  # float16 probabilities are clipped; the logits give the larger true loss
    assert "float16" in f.message
