"""compare on custom layers holding built-in sub-layers and on layers with state (fixtures/build_layers.py),
checked against numbers Keras itself produces in the same test on a fresh load of the same file."""

from __future__ import annotations

import importlib.util

import pytest

from tests.conftest import fixture_files, load_npz, rel, run_cli, sha256

pytestmark = pytest.mark.keras

# scenario -> the training-behaviour codes compare must report
HOLDERS = {
    "transformer_block": {"dropout"},
    "custom_bn_block": {"dropout", "batchnorm-batch-stats"},
    "subclassed_bn_model": {"dropout", "batchnorm-batch-stats"},
}
STATEFUL = ("stateful_lstm", "running_center")
TRAINING_CODES = {"dropout", "batchnorm-batch-stats", "noise-layer", "unexplained"}

_cache: dict[str, tuple] = {}


def _custom_objects(name: str) -> list[str]:
    layers = fixture_files(name)[0].parent / "layers.py"
    return ["--custom-objects", str(layers)] if layers.exists() else []


def compare_json(name: str):
    if name not in _cache:
        model, data = fixture_files(name)
        before = (sha256(model), sha256(data))
        res = run_cli("compare", model, data, "--format", "json", *_custom_objects(name))
        _cache[name] = (res, before, (sha256(model), sha256(data)))
    return _cache[name]


def figures(name: str) -> dict[str, float]:
    res = compare_json(name)[0]
    assert res.code in (0, 1), res.stderr
    return {k: v["value"] for k, v in res.json["figures"].items()}


def codes(name: str) -> set[str]:
    return {f["code"] for f in compare_json(name)[0].json["findings"]}


def fresh(name: str):
    """The saved model as Keras loads it itself, its custom classes registered from the fixture's layers.py."""
    import keras

    model_path, _ = fixture_files(name)
    layers = model_path.parent / "layers.py"
    if layers.exists():
        spec = importlib.util.spec_from_file_location(f"fixture_layers_{name}", layers)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    keras.utils.set_random_seed(0)
    return keras.saving.load_model(model_path)


def data(name: str):
    arrays = load_npz(fixture_files(name)[1])
    return arrays["x"], arrays["y"]


def training_loss(model, x, y, batch_size: int = 32) -> float:
    """What a fit step measures before its update, batch after batch, without updating the weights:
    Keras's compute_loss on model(x, training=True), batch means weighted by batch size."""
    total = 0.0
    for start in range(0, len(x), batch_size):
        xb, yb = x[start:start + batch_size], y[start:start + batch_size]
        total += float(model.compute_loss(xb, yb, model(xb, training=True))) * len(xb)
    return total / len(x)


def _sublayers(model, kind):
    return [lyr for lyr in model._flatten_layers(include_self=False, recursive=True) if isinstance(lyr, kind)]


@pytest.mark.parametrize("name", sorted(HOLDERS))
def test_sub_layers_walked_and_figures_match_keras(name):
    """Dropout/BatchNormalization held as attributes of a custom layer or a subclassed model are found,
    and every figure is the one Keras gives: evaluate and fit on a fresh load; the training-mode
    passes as Keras's own training-mode calls from the saved seed states (all layers; only Dropout,
    with BatchNormalization frozen; only BatchNormalization, with the Dropout rates at 0)."""
    import keras

    fig = figures(name)
    x, y = data(name)
    assert rel(fig["evaluate"], fresh(name).evaluate(x, y, batch_size=32, verbose=0, return_dict=True)["loss"]) < 1e-4
    assert rel(fig["manual"], fig["evaluate"]) < 1e-4
    history = fresh(name).fit(x, y, batch_size=32, epochs=1, shuffle=False, verbose=0).history
    assert rel(fig["fit_epoch"], history["loss"][-1]) < 1e-4
    assert rel(fig["train_mode"], training_loss(fresh(name), x, y)) < 1e-4

    model = fresh(name)
    for bn in _sublayers(model, keras.layers.BatchNormalization):
        bn.trainable = False  # Keras runs a frozen BatchNormalization in inference mode even in training
    assert rel(fig["train_mode_dropout_only"], training_loss(model, x, y)) < 1e-4

    model = fresh(name)
    dropouts = _sublayers(model, keras.layers.Dropout)
    assert dropouts
    if _sublayers(model, keras.layers.BatchNormalization):
        for layer in dropouts:
            layer.rate = 0.0
        assert rel(fig["train_mode_batchnorm_only"], training_loss(model, x, y)) < 1e-4
    else:
        assert "train_mode_batchnorm_only" not in fig
    if "train_mode_custom_only" in fig:  # the block's only training behaviour is its sub-layers'
        assert rel(fig["train_mode_custom_only"], fig["evaluate"]) < 1e-9

    found = codes(name) & TRAINING_CODES
    assert found == HOLDERS[name]


@pytest.mark.parametrize("name", sorted(HOLDERS))
def test_sub_layers_in_families(name):
    """Each Dropout (of a rate above 0) and BatchNormalization sub-layer is in its family, and the layer
    holding them is not taken for a Dropout because it holds one under the attribute name `dropout`."""
    import keras

    from losscheck.probes.layers import LayerFamilies

    model = fresh(name)
    fam = LayerFamilies.of(model)
    dropouts = [lyr for lyr in _sublayers(model, keras.layers.Dropout) if lyr.rate > 0]  # not MHA's rate-0 one
    assert {id(lyr) for lyr in fam.dropout} == {id(lyr) for lyr in dropouts}
    assert {id(lyr) for lyr in fam.batchnorm} == {id(lyr) for lyr in _sublayers(model, keras.layers.BatchNormalization)}
    assert not fam.noise


@pytest.mark.parametrize("name", STATEFUL)
def test_stateful_figures_match_fresh_keras(name):
    """Each pass starts from the saved state: evaluate and fit are Keras's on a fresh load, train_mode is
    Keras's training-mode calls batch after batch (state carried as fit carries it) on a fresh load,
    and no gap is left unexplained."""
    fig = figures(name)
    x, y = data(name)
    assert rel(fig["evaluate"], fresh(name).evaluate(x, y, batch_size=32, verbose=0)) < 1e-4
    assert rel(fig["manual"], fig["evaluate"]) < 1e-4
    history = fresh(name).fit(x, y, batch_size=32, epochs=1, shuffle=False, verbose=0).history
    assert rel(fig["fit_epoch"], history["loss"][-1]) < 1e-4
    assert rel(fig["train_mode"], training_loss(fresh(name), x, y)) < 1e-4
    assert "unexplained" not in codes(name)


def test_stateful_lstm_state_matters():
    """The fixture is a real test of state handling: a second evaluate, from the states the first left,
    gives another figure (what compare's later passes would have measured before)."""
    x, y = data("stateful_lstm")
    model = fresh("stateful_lstm")
    first = model.evaluate(x, y, batch_size=32, verbose=0)
    assert rel(model.evaluate(x, y, batch_size=32, verbose=0), first) > 1e-2
    assert {"weight-update"} == codes("stateful_lstm") & (TRAINING_CODES | {"weight-update"})


def test_running_center_reported_as_custom_training():
    fig = figures("running_center")
    assert rel(fig["train_mode_custom_only"], fig["train_mode"]) < 1e-9  # the only training behaviour
    assert "noise-layer" in codes("running_center")


@pytest.mark.parametrize("name", STATEFUL)
def test_probes_leave_state_as_found(name):
    """Every pass (inference, training-mode, fit) starts from the state it finds and leaves it so, stateful
    RNN states and a custom layer's assigned variables included, even when that state is not the
    freshly loaded one."""
    import numpy as np

    from losscheck.loading.data import load_data
    from losscheck.loading.memory import call_state_variables, loaded_in_memory
    from losscheck.probes.fitting import fit_epoch_restoring
    from losscheck.probes.prober import Prober

    model = fresh(name)
    x, y = data(name)
    model.evaluate(x, y, batch_size=32, verbose=0)  # moves the RNN states away from the saved zeros
    model.fit(x[:32], y[:32], batch_size=32, epochs=1, shuffle=False, verbose=0)  # and the running mean
    state = call_state_variables(model)
    before = [np.array(v) for v in state]
    assert any(np.any(b != 0) for b in before if b.dtype.kind == "f")
    loaded = loaded_in_memory(model)
    dataset = load_data(fixture_files(name)[1], ["x"], loaded.output_names)
    prober = Prober(loaded, dataset, 32)
    first = prober.inference_pass().evaluate
    train = prober.training_pass(None)
    assert prober.inference_pass().evaluate == first
    assert prober.training_pass(None) == train
    fit = fit_epoch_restoring(model, dataset, 32)
    assert all(np.array_equal(a, np.array(v)) for a, v in zip(before, state, strict=True))

    # the same figures Keras gives from that state, on a copy holding it
    copy = fresh(name)
    copy.set_weights(model.get_weights())
    for var, value in zip(call_state_variables(copy), before, strict=True):
        var.assign(value)
    copy.optimizer.build(copy.trainable_variables)
    for var, value in zip(copy.optimizer.variables, [np.array(v) for v in model.optimizer.variables], strict=True):
        var.assign(value)
    assert rel(first, copy.evaluate(x, y, batch_size=32, verbose=0)) < 1e-4
    for var, value in zip(call_state_variables(copy), before, strict=True):
        var.assign(value)
    assert rel(fit, copy.fit(x, y, batch_size=32, epochs=1, shuffle=False, verbose=0).history["loss"][-1]) < 1e-4


@pytest.mark.parametrize("name", [*sorted(HOLDERS), *STATEFUL])
def test_files_unchanged(name):
    _, before, after = compare_json(name)
    assert before == after


OWN_RATE_LAYERS = '''import keras
from keras import layers, ops


@keras.saving.register_keras_serializable(package="losscheck_tests")
class OwnDropoutBN(layers.Layer):
    """Dense -> BatchNormalization -> its own dropout (a rate held as `self.dropout`, no Dropout layer)."""

    def __init__(self, units, dropout=0.3, **kwargs):
        super().__init__(**kwargs)
        self.units, self.dropout = units, dropout
        self.dense = layers.Dense(units)
        self.bn = layers.BatchNormalization()
        self.seed_generator = keras.random.SeedGenerator(7)

    def call(self, inputs, training=None):
        h = ops.relu(self.bn(self.dense(inputs), training=training))
        if training:
            h = keras.random.dropout(h, self.dropout, seed=self.seed_generator)
        return h

    def get_config(self):
        config = super().get_config()
        config.update(units=self.units, dropout=self.dropout)
        return config
'''


def test_own_dropout_rate_beside_batchnorm(tmp_path):
    """A layer with a dropout rate of its own is the Dropout family; in the Dropout-only pass the
    BatchNormalization it holds stays in inference behaviour (Keras: the same model with that
    BatchNormalization frozen), and in the BatchNorm-only pass the layer itself does not drop."""
    import keras
    import numpy as np

    from losscheck.probes.layers import LayerFamilies

    (tmp_path / "layers.py").write_text(OWN_RATE_LAYERS)
    spec = importlib.util.spec_from_file_location("own_rate_layers", tmp_path / "layers.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    keras.utils.set_random_seed(11)
    rng = np.random.default_rng(11)
    x = (rng.normal(size=(64, 4)) * 2 + 1).astype("float32")
    y = (x @ rng.normal(size=(4, 1))).astype("float32")
    model = keras.Sequential([keras.Input((4,), name="x"), module.OwnDropoutBN(8, name="block"),
                              keras.layers.Dense(1, name="out")])
    model.compile("sgd", "mse")
    model.save(tmp_path / "model.keras")
    np.savez(tmp_path / "data.npz", x=x, y=y)
    res = run_cli("compare", tmp_path / "model.keras", tmp_path / "data.npz", "--custom-objects",
                  tmp_path / "layers.py", "--format", "json")
    assert res.code in (0, 1), res.stderr
    fig = {k: v["value"] for k, v in res.json["figures"].items()}

    def load():
        keras.utils.set_random_seed(0)
        return keras.saving.load_model(tmp_path / "model.keras")

    fam = LayerFamilies.of(load())
    assert fam.names("dropout") == ["block"] and len(fam.batchnorm) == 1
    assert rel(fig["train_mode"], training_loss(load(), x, y)) < 1e-4
    frozen = load()
    for bn in _sublayers(frozen, keras.layers.BatchNormalization):
        bn.trainable = False
    assert rel(fig["train_mode_dropout_only"], training_loss(frozen, x, y)) < 1e-4
    no_drop = load()
    no_drop.get_layer("block").dropout = 0.0
    assert rel(fig["train_mode_batchnorm_only"], training_loss(no_drop, x, y)) < 1e-4
