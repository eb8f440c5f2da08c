"""Metrics and losses judged by what they compute, not their names, on the fixtures of
fixtures/build_metrics_semantics.py: a threshold that fits logits, MeanIoU given probabilities, a
built-in loss that gives one value per batch, target-shape's naive figure with the model's own loss,
string-input models that keep their compiled metrics. Expected numbers come from Keras in each test."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from tests.conftest import FIXTURES, load_npz, rel, run_cli

pytestmark = pytest.mark.keras

NEW_CODES = {"metric-threshold", "metric-class-ids", "loss-rank", "batch-size-dependence", "target-shape"}
_cache: dict[tuple[str, str, str], dict] = {}


def _report(name: str, model: str = "model.keras", data: str = "data.npz") -> dict:
    """losscheck compare's JSON report on a fixture (one run per file pair and test session)."""
    key = (name, model, data)
    if key not in _cache:
        d = FIXTURES / name
        data_arg = str(d / data.split(":")[0]) + (":" + data.split(":")[1] if ":" in data else "")
        res = run_cli("compare", d / model, data_arg, "--format", "json", "--fail-on", "never")
        assert res.code == 0, res.stderr
        _cache[key] = res.json
    return _cache[key]


def _keras_model(name: str, model: str = "model.keras"):
    import keras

    keras.utils.set_random_seed(0)
    return keras.saving.load_model(FIXTURES / name / model)


def _arrays(name: str, data: str = "data.npz"):
    a = load_npz(FIXTURES / name / data)
    return a["x"], a["y"]


def _findings(doc: dict, code: str) -> list[dict]:
    return [f for f in doc["findings"] if f["code"] == code]


def _check_metrics(doc: dict, expected: dict) -> None:
    """The metrics section gives Keras's value for every compiled metric, and losscheck's own the same."""
    names = [k for k in expected if k != "loss"]
    assert sorted(doc["metrics"]) == sorted(names)
    for k in names:
        row = doc["metrics"][k]
        assert rel(row["evaluate"], expected[k]) < 1e-4, (k, row, expected[k])
        assert row["manual"] is not None and rel(row["manual"], expected[k]) < 1e-4, (k, row)


def test_threshold_zero_on_logits_is_right():
    import keras

    doc = _report("logit_threshold")
    model = _keras_model("logit_threshold")
    x, y = _arrays("logit_threshold")
    expected = model.evaluate(x, y, batch_size=32, verbose=0, return_dict=True)
    _check_metrics(doc, expected)
    # what makes 0.0 right: on logits it decides as 0.5 does on sigmoid(logits)
    logits = model.predict(x, verbose=0)
    at_zero = keras.metrics.BinaryAccuracy(threshold=0.0)
    at_zero.update_state(y, logits)
    on_probs = keras.metrics.BinaryAccuracy()
    on_probs.update_state(y, keras.ops.sigmoid(logits))
    assert float(at_zero.result()) == pytest.approx(float(on_probs.result()))
    assert rel(doc["metrics"]["accuracy"]["evaluate"], float(on_probs.result())) < 1e-4
    assert not {f["code"] for f in doc["findings"]} & NEW_CODES, doc["findings"]


def test_meaniou_on_probabilities_is_a_warning():
    import keras

    doc = _report("meaniou_probs")
    model = _keras_model("meaniou_probs")
    x, y = _arrays("meaniou_probs")
    keras_value = model.evaluate(x, y, batch_size=32, verbose=0, return_dict=True)["mean_iou"]
    # the same model scored on class ids: OneHotMeanIoU takes the argmax of outputs and targets
    model.compile(loss="categorical_crossentropy", metrics=[keras.metrics.OneHotMeanIoU(num_classes=3)])
    on_ids = model.evaluate(x, y, batch_size=32, verbose=0, return_dict=True)["one_hot_mean_io_u"]
    assert abs(keras_value - on_ids) > 1e-3  # the fixture plants a real difference
    (f,) = _findings(doc, "metric-class-ids")
    assert f["severity"] == "warning" and f["subject"] == "mask"
    assert rel(f["magnitude"], keras_value - on_ids) < 1e-4
    assert f"{keras_value:.6g}" in f["message"] and f"{on_ids:.6g}" in f["message"]
    assert "probabilities" in f["message"] and "OneHotMeanIoU" in f["advice"]
    assert rel(doc["metrics"]["mean_iou"]["evaluate"], keras_value) < 1e-4


@pytest.mark.parametrize("model, data", [("model.keras", "data.npz"), ("onehot.keras", "onehot.npz")],
                         ids=["sparse_y_pred=False", "OneHotMeanIoU"])
def test_class_id_metrics_used_right_give_nothing(model, data):
    doc = _report("meaniou_ids", model, data)
    x, y = _arrays("meaniou_ids", data)
    expected = _keras_model("meaniou_ids", model).evaluate(x, y, batch_size=32, verbose=0, return_dict=True)
    _check_metrics(doc, expected)
    assert not {f["code"] for f in doc["findings"]} & NEW_CODES, doc["findings"]


def test_dice_with_axis_none_gets_loss_rank_and_batch_size_dependence():
    import keras

    doc = _report("dice_batch")
    model = _keras_model("dice_batch")
    x, y = _arrays("dice_batch")
    at_32 = model.evaluate(x, y, batch_size=32, verbose=0)
    at_16 = model.evaluate(x, y, batch_size=16, verbose=0)
    model.compile(loss=keras.losses.Dice(axis=(1, 2, 3)))
    per_sample = model.evaluate(x, y, batch_size=32, verbose=0)
    assert rel(doc["figures"]["evaluate"]["value"], at_32) < 1e-4
    (rank,) = _findings(doc, "loss-rank")
    assert rank["subject"] == "mask" and rank["severity"] == "error"
    assert f"with one value per sample (Dice(axis=(1, 2, 3))) it is {per_sample:.6g}" in rank["message"]
    assert f"(difference {at_32 - per_sample:+.6g})" in rank["message"]
    assert "axis=(1, 2, 3)" in rank["advice"]
    (bsd,) = _findings(doc, "batch-size-dependence")
    assert rel(bsd["magnitude"], at_16 / at_32) < 1e-4
    assert "see loss-rank" in bsd["message"]


def test_target_shape_naive_figure_uses_the_models_loss():
    doc = _report("flat_targets_bce")
    model = _keras_model("flat_targets_bce")
    x, y = _arrays("flat_targets_bce")
    assert y.ndim == 1
    keras_value = model.evaluate(x, y, batch_size=32, verbose=0)
    p = np.clip(model.predict(x, verbose=0).astype(np.float64), 1e-7, 1 - 1e-7)  # (n, 1)
    yy = y.astype(np.float64)
    naive_bce = float(np.mean(-(yy * np.log(p) + (1 - yy) * np.log(1 - p))))  # broadcasts to (n, n)
    naive_mse = float(np.mean((yy - p) ** 2))
    (f,) = _findings(doc, "target-shape")
    assert f"gives {naive_bce:.6g}" in f["message"] and f"{naive_mse:.6g}" not in f["message"]
    assert "binary_crossentropy" in f["message"] or "np.log" in f["message"]
    assert rel(f["magnitude"], naive_bce - keras_value) < 1e-4
    assert f["between"] is None


def _string_data(name: str):
    spec = importlib.util.spec_from_file_location(f"string_data_{name}", FIXTURES / name / "data.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("name", ["string_lookup", "text_vectorization"])
def test_string_input_models_keep_their_metrics(name):
    doc = _report(name, data="data.py:data")
    expected = _keras_model(name).evaluate(_string_data(name).data(), verbose=0, return_dict=True)
    assert rel(doc["figures"]["evaluate"]["value"], expected["loss"]) < 1e-4
    _check_metrics(doc, expected)
    assert not any("compiled metrics" in n for n in doc.get("notes", [])), doc.get("notes")
    assert not {f["code"] for f in doc["findings"]} & NEW_CODES, doc["findings"]
