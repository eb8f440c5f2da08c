"""Models that customize Keras's training loop (fixtures/build_custom.py): evaluate and fit are Keras's
own numbers for the model (its train_step/test_step/compute_loss), compared with Keras on a fresh load in
the same test; what cannot be measured faithfully is left out with a note, never faked."""

from __future__ import annotations

import importlib.util

import pytest
from conftest import FIXTURES, fixture_files, load_npz, rel, run_cli

pytestmark = pytest.mark.keras

CUSTOM = ("lowlevel_steps", "test_step_no_weights", "compute_loss_plain", "vae_train_step", "addloss_autoencoder")


def _keras_truth(name: str) -> dict:
    """Keras's evaluate logs (or the exception it raises) and one fit epoch's logs, on a fresh load."""
    import keras

    d = FIXTURES / name
    spec = importlib.util.spec_from_file_location(f"truth_objects_{name}", d / "objects.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    model_path, data_path = fixture_files(name)
    arrays = load_npz(data_path)
    sw = arrays.get("sample_weight")
    model = keras.saving.load_model(model_path)
    try:
        evaluate = model.evaluate(arrays["x"], arrays["y"], sample_weight=sw, batch_size=32, verbose=0,
                                  return_dict=True)
    except ValueError as exc:
        evaluate = exc
    model = keras.saving.load_model(model_path)
    keras.utils.set_random_seed(0)
    history = model.fit(arrays["x"], arrays["y"], sample_weight=sw, batch_size=32, epochs=1, shuffle=False,
                        verbose=0)
    return {"evaluate": evaluate, "fit": {k: float(v[-1]) for k, v in history.history.items()}}


@pytest.fixture(scope="module")
def reports() -> dict:
    out = {}
    for name in CUSTOM:
        model, data = fixture_files(name)
        result = run_cli("compare", model, data, "--custom-objects", FIXTURES / name / "objects.py", "--format",
                         "json")
        assert result.code in (0, 1), result.stderr
        out[name] = result.json
    return out


@pytest.mark.parametrize("name", CUSTOM)
def test_figures_are_keras_own_for_the_model(reports, name):
    doc, truth = reports[name], _keras_truth(name)
    fig = {k: v["value"] for k, v in doc["figures"].items()}
    codes = {f["code"] for f in doc["findings"]}
    if isinstance(truth["evaluate"], Exception):
        assert "evaluate" not in fig
        assert any("evaluate is not reported" in n and "No loss to compute" in n for n in doc["notes"])
    else:
        assert rel(fig["evaluate"], truth["evaluate"]["loss"]) < 1e-4, (fig, truth)
    if "loss" in truth["fit"]:
        assert rel(fig["fit_epoch"], truth["fit"]["loss"]) < 1e-4, (fig, truth)
    else:
        assert "fit_epoch" not in fig
    for key, value in truth["fit"].items():  # the model's own logged losses, as fit logs them
        if key != "loss" and key.endswith("loss"):
            assert rel(fig[f"fit_epoch_{key}"], value) < 1e-4
            assert "model's own step" in doc["figures"][f"fit_epoch_{key}"]["description"]
    assert "custom-step" in codes
    assert not codes & {"unexplained", "sample-weight"}, codes
    assert "manual" not in fig and "regularization" not in fig


def test_the_finding_names_the_overridden_steps_and_what_is_left_out(reports):
    step = {n: next(f for f in reports[n]["findings"] if f["code"] == "custom-step")["message"] for n in CUSTOM}
    assert step["lowlevel_steps"].startswith("The model overrides train_step and test_step and is compiled without")
    assert "training-mode figures" in step["test_step_no_weights"]
    assert "split of fit_epoch - evaluate" in step["test_step_no_weights"]
    fig = reports["test_step_no_weights"]["figures"]
    gap = fig["fit_epoch"]["value"] - fig["evaluate"]["value"]
    assert f"({gap:+.6g})" in step["test_step_no_weights"]  # the sign matches the figures it quotes
    assert "through its own compute_loss" in step["compute_loss_plain"]
    assert "train_mode" in reports["compute_loss_plain"]["figures"]
    assert "decomposition" in reports["compute_loss_plain"]  # Keras's own train/test steps: fit - evaluate splits
    assert "only from add_loss" in step["addloss_autoencoder"]
    assert "fit_epoch_total_loss" in step["vae_train_step"]
    assert "train_mode" not in reports["test_step_no_weights"]["figures"]


def test_breakdown_refuses_a_loss_it_cannot_split():
    model, data = fixture_files("test_step_no_weights")
    result = run_cli("breakdown", model, data, "--per-sample", "--custom-objects",
                     FIXTURES / "test_step_no_weights" / "objects.py")
    assert result.code == 2
    assert "its own test_step" in result.stderr and "losscheck compare" in result.stderr


def test_only_a_model_with_no_loss_anywhere_is_asked_for_one(tmp_path):
    import keras

    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
    model.compile(optimizer="adam")
    model.save(tmp_path / "m.keras")
    result = run_cli("inspect", tmp_path / "m.keras")
    assert result.code == 2 and "--loss" in result.stderr and "add_loss" in result.stderr


def test_models_trained_the_default_way_get_no_custom_step():
    try:
        from test_compare_keras import SCENARIOS, compare_json  # the module pytest imported: its cache is shared
    except ImportError:  # pragma: no cover
        from tests.test_compare_keras import SCENARIOS, compare_json
    for name in sorted(SCENARIOS):
        res, _, _ = compare_json(name)
        assert "custom-step" not in {f["code"] for f in res.json["findings"]}, name
        assert "evaluate" in res.json["figures"] and "manual" in res.json["figures"], name


def test_the_python_api_takes_an_in_memory_model_with_its_own_steps():
    import losscheck

    truth = _keras_truth("lowlevel_steps")
    import keras

    model_path, data_path = fixture_files("lowlevel_steps")
    arrays = load_npz(data_path)
    model = keras.saving.load_model(model_path)  # its class is registered by _keras_truth's import
    report = losscheck.compare(model, x=arrays["x"], y=arrays["y"])
    assert rel(report.figures["evaluate"].value, truth["evaluate"]["loss"]) < 1e-4
    assert rel(report.figures["fit_epoch"].value, truth["fit"]["loss"]) < 1e-4
    assert "custom-step" in {f.code for f in report.findings}


def test_a_fit_whose_validation_keras_cannot_run_keeps_its_training_figures():
    """The VAE's evaluate has no loss, so Keras's own fit(validation_data=...) raises: fit_val is left out
    and the fit figures are those of a fit on the training part without it."""
    import keras

    _keras_truth("vae_train_step")  # registers the fixture's classes
    model_path, data_path = fixture_files("vae_train_step")
    result = run_cli("compare", model_path, data_path, "--validation-split", "0.25", "--custom-objects",
                     FIXTURES / "vae_train_step" / "objects.py", "--format", "json")
    assert result.code in (0, 1), result.stderr
    doc = result.json
    assert "fit_val" not in doc["figures"] and "evaluate_val" not in doc["figures"]
    assert any(n.startswith("fit_val is not reported") for n in doc["notes"])
    arrays = load_npz(data_path)
    split = int(len(arrays["x"]) * 0.75)
    model = keras.saving.load_model(model_path)
    keras.utils.set_random_seed(0)
    logs = model.fit(arrays["x"][:split], arrays["y"][:split], batch_size=32, epochs=1, shuffle=False,
                     verbose=0).history
    assert rel(doc["figures"]["fit_epoch_total_loss"]["value"], logs["total_loss"][-1]) < 1e-4


def test_the_callback_reports_keras_own_evaluate_on_a_model_with_its_own_steps():
    import keras

    from losscheck.callbacks import LossCheck

    _keras_truth("lowlevel_steps")  # registers the fixture's classes
    model_path, data_path = fixture_files("lowlevel_steps")
    arrays = load_npz(data_path)
    model = keras.saving.load_model(model_path)
    callback = LossCheck(x=arrays["x"], y=arrays["y"], verbose=0)
    history = model.fit(arrays["x"], arrays["y"], epochs=1, verbose=0, callbacks=[callback])
    report = callback.reports[-1]
    expected = model.evaluate(arrays["x"], arrays["y"], verbose=0, return_dict=True)["loss"]
    assert rel(report.figures["evaluate"].value, expected) < 1e-4
    assert report.figures["fit_logged"].value == history.history["loss"][-1]
    assert {f.code for f in report.findings} == {"custom-step"}
    assert "train_mode" not in report.figures


def test_a_loss_added_by_a_helper_method_of_a_layer_needs_no_loss_option(tmp_path):
    import keras
    import numpy as np

    @keras.saving.register_keras_serializable(package="losscheck_tests")
    class PenaltyThroughHelper(keras.layers.Layer):
        def _penalize(self, x):
            self.add_loss(0.1 * keras.ops.mean(keras.ops.square(x)))

        def call(self, x):
            self._penalize(x)
            return x

    x = np.random.default_rng(5).normal(size=(64, 4)).astype("float32")
    inputs = keras.Input((4,))
    model = keras.Model(inputs, PenaltyThroughHelper()(keras.layers.Dense(4)(inputs)))
    model.compile("adam")
    model.save(tmp_path / "m.keras")
    np.savez(tmp_path / "d.npz", x=x, y=x)
    result = run_cli("compare", tmp_path / "m.keras", tmp_path / "d.npz", "--format", "json")
    assert result.code in (0, 1), result.stderr
    expected = keras.saving.load_model(tmp_path / "m.keras").evaluate(x, x, verbose=0)
    assert rel(result.json["figures"]["evaluate"]["value"], expected) < 1e-4
