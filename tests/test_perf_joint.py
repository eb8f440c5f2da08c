"""The shared passes change no figure: the inference pass with the training-mode variants in the same
compiled step equals the two passes run apart; fit on Keras's array adapter without tf.data autotuning
equals Keras's fit on the arrays; the callback keeps its compiled pass between checks of the same
compiled model and builds a new one after a recompile. Real Keras, small models."""

from __future__ import annotations

import numpy as np
import pytest

from tests.conftest import seeded_prober

pytestmark = pytest.mark.keras


def _model(kind: str):
    import keras
    from keras import layers

    if kind == "conv":
        inp = keras.Input((8, 8, 2))
        x = layers.Conv2D(4, 3, padding="same", use_bias=False)(inp)
        x = layers.BatchNormalization()(x)
        x = layers.Activation("relu")(x)
        x = layers.GlobalAveragePooling2D()(x)
        x = layers.Dense(8, activation="relu", kernel_regularizer=keras.regularizers.L2(1e-2))(x)
        x = layers.Dropout(0.4)(x)
        return keras.Model(inp, layers.Dense(3, activation="softmax")(x)), "categorical_crossentropy", (8, 8, 2), 3
    base_in = keras.Input((6,))
    b = layers.Dense(12)(base_in)
    b = layers.BatchNormalization()(b)
    base = keras.Model(base_in, layers.Activation("relu")(b), name="base")
    inp = keras.Input((6,))
    x = layers.GaussianNoise(0.2)(base(inp))
    x = layers.Dropout(0.5)(x)
    return keras.Model(inp, layers.Dense(1, activation="sigmoid")(x)), "binary_crossentropy", (6,), 1


def _data(loss: str, shape: tuple, k: int, n: int = 90):
    rng = np.random.default_rng(5)
    x = rng.normal(size=(n, *shape)).astype("float32") + 0.5
    if loss == "categorical_crossentropy":
        y = np.eye(k, dtype="float32")[rng.integers(0, k, size=n)]
    else:
        y = rng.integers(0, 2, size=(n, 1)).astype("float32")
    return x, y


@pytest.fixture(scope="module", params=["conv", "nested"])
def saved(request, tmp_path_factory):
    import keras

    keras.utils.set_random_seed(4)
    model, loss, shape, k = _model(request.param)
    model.compile(optimizer=keras.optimizers.Adam(1e-2), loss=loss)
    x, y = _data(loss, shape, k)
    model.fit(x[:32], y[:32], batch_size=16, epochs=1, verbose=0)
    d = tmp_path_factory.mktemp(request.param)
    model.save(d / "model.keras")
    np.savez(d / "data.npz", x=x, y=y)
    return d / "model.keras", d / "data.npz"


@pytest.mark.parametrize(("class_weight", "limit"), [(None, None), ({0: 1.0, 1: 3.0, 2: 0.5}, None), (None, 32)])
def test_joint_pass_equals_separate_passes(saved, class_weight, limit):
    from losscheck.probes.gaps import training_mode_variants
    from losscheck.probes.joint import joint_applies

    loaded, _, apart = seeded_prober(*saved)
    variants = training_mode_variants(apart, limit)
    before = [np.array(v) for v in loaded.model.variables]
    inf_apart = apart.inference_pass()
    passes_apart = apart.training_passes_weighted(variants, class_weight, limit)
    batches_apart = apart.last_batches

    _, _, joint = seeded_prober(*saved)
    assert joint_applies(joint, limit)
    inf_joint = joint.inference_pass(variants=variants, class_weight=class_weight, limit=limit)
    assert joint.joint, "the joint pass ran"
    passes_joint = joint.training_passes_weighted(variants, class_weight, limit)
    assert passes_joint == passes_apart
    assert joint.last_batches == batches_apart
    assert (inf_joint.evaluate, inf_joint.manual, inf_joint.regularization) == \
        (inf_apart.evaluate, inf_apart.manual, inf_apart.regularization)
    assert inf_joint.batch_totals == inf_apart.batch_totals
    assert all(np.array_equal(a, np.array(b)) for a, b in zip(before, joint.model.variables, strict=True))
    # a second joint pass on the same prober runs the step it compiled, with the same figures
    again = joint.inference_pass(variants=variants, class_weight=class_weight, limit=limit)
    assert again.batch_totals == inf_apart.batch_totals
    assert joint.training_passes_weighted(variants, class_weight, limit) == passes_apart


@pytest.mark.parametrize("weights", ["none", "sample", "class"])
def test_fit_epoch_equals_keras_fit_on_arrays(saved, weights, monkeypatch):
    import keras

    import losscheck.probes.fitting as fitting
    from losscheck.loading.data import load_data
    from losscheck.loading.inputs import input_names
    from losscheck.loading.model import load_model

    model_path, data_path = saved
    with np.load(data_path) as f:
        x, y = f["x"], f["y"]
    sw = np.linspace(0.5, 2.0, len(x)).astype("float32") if weights == "sample" else None
    cw = {0: 1.0, 1: 2.5} if weights == "class" else None
    ref = keras.saving.load_model(model_path)
    keras.utils.set_random_seed(0)
    history = ref.fit(x, y, batch_size=16, epochs=1, shuffle=False, sample_weight=sw, class_weight=cw, verbose=0)

    def fitted(quiet: bool):
        if not quiet:
            monkeypatch.setattr(fitting, "array_batches", lambda *a, **k: None)
        loaded = load_model(model_path)
        data = load_data(data_path, input_names(loaded.model), loaded.output_names)
        if sw is not None:
            data.sample_weight = sw
        return fitting.fit_epoch(loaded.model, data, 16, cw, 0), loaded.model

    got, model = fitted(True)
    assert got == history.history["loss"][0]
    assert all(np.array_equal(np.array(a), np.array(b)) for a, b in zip(ref.variables, model.variables, strict=True))
    assert fitted(False)[0] == got


def test_callback_keeps_its_compiled_pass_until_recompiled(saved, monkeypatch):
    import keras

    import losscheck.probes.joint as joint
    from losscheck.callbacks import LossCheck

    built = []
    original = joint.joint_step
    monkeypatch.setattr(joint, "joint_step", lambda *a, **k: built.append(1) or original(*a, **k))
    model_path, data_path = saved
    with np.load(data_path) as f:
        x, y = f["x"], f["y"]
    model = keras.saving.load_model(model_path)
    check = LossCheck(data=(x, y), batch_size=16, verbose=0, on="epoch_end")
    model.fit(x, y, batch_size=16, epochs=3, shuffle=False, verbose=0, callbacks=[check])
    assert len(check.reports) == 3 and len(built) == 1
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss=model.loss)
    model.fit(x, y, batch_size=16, epochs=1, shuffle=False, verbose=0, callbacks=[check])
    assert len(check.reports) == 4 and len(built) == 2

    # the kept pass gives the figures a fresh callback measures at the same weights
    fresh = LossCheck(data=(x, y), batch_size=16, verbose=0, on="epoch_end")
    fresh.set_model(model)
    check.on_epoch_end(0, {"loss": 1.0})
    fresh.on_epoch_end(0, {"loss": 1.0})
    kept, new = check.reports[-1].figures, fresh.reports[-1].figures
    assert {k: f.value for k, f in kept.items()} == {k: f.value for k, f in new.items()}
    assert [f.code for f in check.reports[-1].findings] == [f.code for f in fresh.reports[-1].findings]
