"""compare on every issue-2 fixture, checked against numbers Keras itself produces in the same test."""

from __future__ import annotations

import pytest

from tests.conftest import fixture_files, load_npz, rel, run_cli, sha256

pytestmark = pytest.mark.keras

# scenario -> (expected issue-2 codes, model has randomness in training mode)
SCENARIOS = {
    "dense_story4": ({"weight-update"}, False),
    "frozen_bn_dropout": ({"weight-update", "dropout"}, True),
    "bn_shift": ({"weight-update", "batchnorm-batch-stats"}, False),
    "regularized": ({"weight-update", "regularization"}, False),
    "gaussian_noise": ({"weight-update", "noise-layer"}, True),
    "two_outputs": ({"weight-update"}, False),
    "sample_weights": ({"weight-update", "sample-weight"}, False),
    "tfkeras_h5": ({"weight-update", "legacy-keras"}, False),
}
ISSUE2_CODES = {"weight-update", "dropout", "batchnorm-batch-stats", "noise-layer", "regularization",
                "class-weight", "sample-weight", "unexplained"}

_cache: dict[str, tuple] = {}


def compare_json(name: str):
    if name not in _cache:
        model, data = fixture_files(name)
        before = (sha256(model), sha256(data))
        res = run_cli("compare", model, data, "--format", "json")
        after = (sha256(model), sha256(data))
        _cache[name] = (res, before, after)
    return _cache[name]


def keras_model(name: str):
    """The model as Keras loads it itself (compile=True) where it can; else losscheck's recovered compile."""
    import keras

    from losscheck.loading.model import load_model

    model_path, _ = fixture_files(name)
    keras.utils.set_random_seed(0)
    if model_path.suffix == ".keras":
        return keras.saving.load_model(model_path)
    return load_model(model_path).model


def keras_args(name: str, model):
    _, data_path = fixture_files(name)
    arrays = load_npz(data_path)
    sw = arrays.get("sample_weight")
    if "x" in arrays:
        x = arrays["x"]
    else:
        x = [arrays[k] for k in sorted(a for a in arrays if a.startswith("x_"))]
    if "y" in arrays:
        y = arrays["y"]
    else:
        y = [arrays[f"y_{o}"] for o in model.output_names]
    return x, y, sw


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_figures_match_keras(name):
    res, _, _ = compare_json(name)
    assert res.code in (0, 1), res.stderr
    out = res.json
    fig = {k: v["value"] for k, v in out["figures"].items()}
    model = keras_model(name)
    x, y, sw = keras_args(name, model)
    ev = model.evaluate(x, y, batch_size=32, sample_weight=sw, verbose=0, return_dict=True)["loss"]
    assert rel(fig["evaluate"], ev) < 1e-4
    assert rel(fig["manual"] + fig["regularization"], ev) < 1e-4
    codes = {f["code"] for f in out["findings"]} & ISSUE2_CODES
    expected, random = SCENARIOS[name]
    assert codes == expected - {"legacy-keras"}
    if not random:
        fit_model = keras_model(name)
        hist = fit_model.fit(x, y, batch_size=32, epochs=1, shuffle=False, sample_weight=sw, verbose=0)
        assert rel(fig["fit_epoch"], hist.history["loss"][-1]) < 1e-4


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_files_unchanged(name):
    _, before, after = compare_json(name)
    assert before == after


def test_legacy_finding_for_tfkeras():
    res, _, _ = compare_json("tfkeras_h5")
    assert "legacy-keras" in {f["code"] for f in res.json["findings"]}
    assert res.json["model"]["saved_by"].startswith("tf.keras 2.")


def test_training_mode_figures_present_only_with_layers():
    figs = compare_json("dense_story4")[0].json["figures"]
    assert "train_mode_dropout_only" not in figs and "train_mode_batchnorm_only" not in figs
    figs = compare_json("frozen_bn_dropout")[0].json["figures"]
    assert "train_mode_dropout_only" in figs
    # the only BN is frozen: Keras 3 runs it in inference mode in fit, so no BN-only figure
    assert "train_mode_batchnorm_only" not in figs


def test_bn_moving_stats_untouched_by_probes():
    """The training-mode passes must leave BatchNormalization moving statistics as loaded."""
    import numpy as np

    from losscheck.loading.data import load_data
    from losscheck.loading.model import load_model
    from losscheck.probes.prober import Prober

    model_path, data_path = fixture_files("bn_shift")
    loaded = load_model(model_path)
    before = [np.array(v) for v in loaded.model.non_trainable_variables]
    data = load_data(data_path, ["x"], loaded.output_names)
    prober = Prober(loaded, data, 32)
    prober.training_pass(None)
    prober.training_pass("batchnorm")
    after = [np.array(v) for v in loaded.model.non_trainable_variables]
    assert all(np.array_equal(a, b) for a, b in zip(before, after, strict=True))


def test_class_weight_fit_matches_keras():
    """--class-weight: fit_epoch equals Keras's own fit(class_weight=...); evaluate ignores it."""
    import keras

    model_path, data_path = fixture_files("bn_classifier")
    res = run_cli("compare", model_path, data_path, "--class-weight", '{"0": 1, "1": 5}', "--format", "json")
    assert res.code in (0, 1), res.stderr
    out = res.json
    fig = {k: v["value"] for k, v in out["figures"].items()}
    arrays = load_npz(data_path)
    model = keras.saving.load_model(model_path)
    hist = model.fit(arrays["x"], arrays["y"], batch_size=32, epochs=1, shuffle=False,
                     class_weight={0: 1.0, 1: 5.0}, verbose=0)
    assert rel(fig["fit_epoch"], hist.history["loss"][-1]) < 1e-4
    ev = keras.saving.load_model(model_path).evaluate(arrays["x"], arrays["y"], batch_size=32, verbose=0)
    assert rel(fig["evaluate"], ev) < 1e-4
    codes = {f["code"] for f in out["findings"]}
    assert {"class-weight", "batchnorm-batch-stats"} <= codes
    assert not codes & {"dropout", "noise-layer", "unexplained"}
    cw = next(f for f in out["findings"] if f["code"] == "class-weight")
    assert abs(cw["magnitude"] - (fig["train_mode_class_weighted"] - fig["train_mode"])) < 1e-9
    assert cw["between"] == ["train_mode_class_weighted", "train_mode"]
    # train_mode_class_weighted is the class-weighted loss of training-mode forward passes at the saved
    # weights (what fit's steps measure before updating), batch means weighted by batch size
    import numpy as np

    fresh = keras.saving.load_model(model_path)
    x, y = arrays["x"], arrays["y"]
    total = 0.0
    for start in range(0, len(x), 32):
        xb, yb = x[start:start + 32], y[start:start + 32]
        weights = np.where(yb.reshape(-1) == 1, 5.0, 1.0).astype("float32")
        loss = fresh.compute_loss(xb, yb, fresh(xb, training=True), sample_weight=weights)
        total += float(loss) * len(xb)
    assert rel(fig["train_mode_class_weighted"], total / len(x)) < 1e-5


def test_probe_samples_reported_and_subset_consistent():
    model_path, data_path = fixture_files("bn_classifier")
    out = run_cli("compare", model_path, data_path, "--probe-samples", "40", "--format", "json").json
    assert out["figures"]["train_mode"]["samples"] == 40  # exactly: batches of 32 and 8
    assert out["figures"]["evaluate_probe_subset"]["samples"] == 40
    assert "samples" not in out["figures"]["evaluate"]
