"""Issue 4 through the CLI: each loss-check fixture gives exactly its code and exit status; the other
fixtures get none of these codes; the reduction trace is in the report."""

from __future__ import annotations

import math

import pytest

from tests.conftest import FIXTURES, fixture_files, load_npz, rel, run_cli

pytestmark = pytest.mark.keras

CHECK_CODES = {"loss-rank", "batch-size-dependence", "channels-first-axis", "from-logits-mismatch", "non-finite",
               "label-smoothing"}
# fixture -> (expected code, exit code under the default --fail-on error)
EXPECTED = {
    "story5_concat": ("loss-rank", 1),  # and batch-size-dependence, measured (see below)
    "sum_reduction": ("batch-size-dependence", 0),
    "softmax_from_logits": ("from-logits-mismatch", 1),
    "channels_first": ("channels-first-axis", 0),
    "nan_inputs": ("non-finite", 1),
    "label_smoothing": ("label-smoothing", 0),
}

_cache: dict[tuple, object] = {}


def _extra(name: str) -> list[str]:
    losses = FIXTURES / name / "losses.py"
    return ["--custom-objects", str(losses)] if losses.exists() else []


def compare(name: str, *args: str):
    key = (name, *args)
    if key not in _cache:
        model, data = fixture_files(name)
        _cache[key] = run_cli("compare", model, data, *_extra(name), *args)
    return _cache[key]


def codes(res) -> set[str]:
    return {f["code"] for f in res.json["findings"]}


def finding(res, code: str) -> dict:
    return next(f for f in res.json["findings"] if f["code"] == code)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_fixture_gives_exactly_its_code(name):
    res = compare(name, "--format", "json")
    code, exit_code = EXPECTED[name]
    assert res.code == exit_code, res.stderr
    # a loss that sums over the batch also gets the measured batch-size dependence
    also = {"batch-size-dependence"} if code == "loss-rank" else set()
    assert codes(res) & CHECK_CODES == {code} | also
    assert "unexplained" not in codes(res)
    assert res.json["exit_code"] == exit_code


def test_story5_message_names_the_slice_and_the_fix():
    res = compare("story5_concat", "--format", "json")
    f = finding(res, "loss-rank")
    assert f["subject"] == "yz"
    msg = f["message"]
    assert "returns a scalar" in msg and "sums over the batch" in msg
    assert "yz[:, 1] drops axis 1" in msg and "(32, 2) -> (32,)" in msg
    assert "slice with yz[:, 1:]" in f["advice"].lower()
    assert f["magnitude"] == pytest.approx(32.0, rel=1e-3)


def test_story5_fails_without_custom_objects():
    model, data = fixture_files("story5_concat")
    res = run_cli("compare", model, data)
    assert res.code == 2
    assert len(res.stderr.strip().splitlines()) == 1


def test_sum_reduction_ratio_is_measured_against_keras():
    import keras

    res = compare("sum_reduction", "--format", "json")
    f = finding(res, "batch-size-dependence")
    probe = res.json["reduction_trace"]["batch_size_probe"]
    b1, b2 = probe["batch_sizes"]
    model_path, data_path = fixture_files("sum_reduction")
    arrays = load_npz(data_path)
    model = keras.saving.load_model(model_path)
    v1 = model.evaluate(arrays["x"], arrays["y"], batch_size=b1, verbose=0)
    v2 = model.evaluate(arrays["x"], arrays["y"], batch_size=b2, verbose=0)
    assert rel(probe["values"][0], v1) < 1e-4 and rel(probe["values"][1], v2) < 1e-4
    assert f["magnitude"] == pytest.approx(v2 / v1, rel=1e-4)
    assert "sum" in f["advice"]


def test_softmax_from_logits_measures_both_readings():
    import keras
    import numpy as np

    res = compare("softmax_from_logits", "--format", "json")
    f = finding(res, "from-logits-mismatch")
    assert "softmax" in f["message"] and "Confirmed from the outputs" in f["message"]
    model_path, data_path = fixture_files("softmax_from_logits")
    arrays = load_npz(data_path)
    model = keras.saving.load_model(model_path)
    probs = model.predict(arrays["x"], verbose=0)
    literal = float(np.mean(keras.losses.categorical_crossentropy(arrays["y"], probs, from_logits=True)))
    keras_value = model.evaluate(arrays["x"], arrays["y"], verbose=0)
    assert f["magnitude"] == pytest.approx(literal - keras_value, rel=1e-3, abs=1e-6)


def test_nan_inputs_names_array_and_sample_and_compare_survives():
    res = compare("nan_inputs", "--format", "json")
    f = finding(res, "non-finite")
    assert f["subject"] == "x"
    assert "sample 37" in f["message"] and "position [2]" in f["message"]
    # The figure is Keras's own: NaN (written as null, never faked) or, where TensorFlow's kernels
    # absorb the NaN (oneDNN's fused ReLU does), the same finite value Keras's evaluate reports.
    import math

    import keras

    model_path, data_path = fixture_files("nan_inputs")
    arrays = load_npz(data_path)
    keras_value = keras.saving.load_model(model_path).evaluate(arrays["x"], arrays["y"], verbose=0)
    value = res.json["figures"]["evaluate"]["value"]
    if math.isfinite(keras_value):
        assert value == pytest.approx(keras_value, rel=1e-4)
    else:
        assert value is None
    assert not codes(res) & {"unexplained", "batch-size-dependence"}


def test_label_smoothing_floor_is_keras_minimum():
    import keras
    import numpy as np

    res = compare("label_smoothing", "--format", "json")
    f = finding(res, "label-smoothing")
    k, ls = 4, 0.1
    y = np.eye(k, dtype="float32")
    q = y * (1 - ls) + ls / k  # the best possible prediction is the smoothed target itself
    keras_floor = float(keras.losses.CategoricalCrossentropy(label_smoothing=ls)(y, q))
    assert f["magnitude"] == pytest.approx(keras_floor, rel=1e-5)
    worse = float(keras.losses.CategoricalCrossentropy(label_smoothing=ls)(y, np.full_like(q, 1.0 / k)))
    assert worse > f["magnitude"]


def test_channels_first_trace_shows_the_spatial_axis():
    res = compare("channels_first", "--format", "json")
    f = finding(res, "channels-first-axis")
    assert f["subject"] == "features"
    assert "(batch, 7, 16, 16)" in f["message"] and "axis 1" in f["message"]
    steps = res.json["reduction_trace"]["outputs"]["features"]["steps"]
    assert steps[0]["shape"][1:] == [7, 16, 16]
    assert steps[1]["shape"][1:] == [7, 16]
    assert "spatial axis" in steps[1]["operation"]
    # mean over the last axis then over the rest is the mean over all elements: the trace agrees
    assert steps[0]["value"] == pytest.approx(steps[1]["value"], rel=1e-6)
    assert steps[-1]["value"] == pytest.approx(res.json["figures"]["evaluate"]["value"], rel=1e-4)


def test_reduction_trace_adds_up_to_evaluate_on_weighted_outputs():
    res = run_cli("compare", *fixture_files("two_outputs"), "--format", "json")
    trace = res.json["reduction_trace"]
    outs = trace["outputs"]
    weighted = sum(o["steps"][-1]["value"] for o in outs.values())
    assert trace["total"][0]["value"] == pytest.approx(weighted, rel=1e-9)
    assert trace["total"][-1]["value"] == pytest.approx(res.json["figures"]["evaluate"]["value"], rel=1e-12)
    assert trace["total"][-2]["value"] == pytest.approx(res.json["figures"]["evaluate"]["value"], rel=1e-4)
    for name, o in outs.items():
        assert o["steps"][-2]["step"] == "reduction"
        weight = res.json["model"]["loss_weights"][name]
        assert o["steps"][-1]["value"] == pytest.approx(weight * o["steps"][-2]["value"], rel=1e-9)
    assert trace["batch_size_probe"]["ratio"] == pytest.approx(1.0, rel=1e-4)


@pytest.mark.parametrize("fmt", ["table", "markdown"])
def test_trace_is_rendered(fmt):
    res = compare("story5_concat", "--format", fmt)
    assert "Reduction trace" in res.stdout
    assert "scalar returned as it is" in res.stdout
    assert "loss-rank" in res.stdout


def _other_fixtures() -> list[str]:
    import importlib.util

    spec = importlib.util.spec_from_file_location("fixtures_build", FIXTURES / "build.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return sorted(n for n in mod.SCENARIOS if n not in EXPECTED and (FIXTURES / n).is_dir())


@pytest.mark.parametrize("name", _other_fixtures())
def test_other_fixtures_get_none_of_these_codes(name):
    try:
        from tests.test_compare_keras import compare_json

        res = compare_json(name)[0]
    except (ImportError, KeyError):
        res = compare(name, "--format", "json")
    assert res.code in (0, 1), res.stderr
    assert not codes(res) & CHECK_CODES, [f["message"] for f in res.json["findings"] if f["code"] in CHECK_CODES]
    assert all(math.isfinite(v["value"]) for v in res.json["figures"].values())
    trace = res.json["reduction_trace"]
    evaluate = res.json["figures"]["evaluate"]["value"]
    assert trace["total"][-1]["value"] == evaluate
    assert rel(trace["total"][-2]["value"], evaluate) < 1e-4  # data loss + penalties, from the numpy reference
    for out in trace["outputs"].values():
        steps = {st["step"]: st["value"] for st in out["steps"]}
        if out["reduction"] == "sum_over_batch_size":  # sum / element count: the mean of the weighted values
            assert rel(steps["reduction"], steps.get("weights", steps["loss function"])) < 1e-9


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_inspect_gives_the_static_codes(name):
    model, _ = fixture_files(name)
    res = run_cli("inspect", model, *_extra(name), "--format", "json")
    static = {"story5_concat": "loss-rank", "softmax_from_logits": "from-logits-mismatch",
              "channels_first": "channels-first-axis", "label_smoothing": "label-smoothing"}
    got = codes(res) & CHECK_CODES
    assert got == ({static[name]} if name in static else set())
    assert res.code == (1 if name in ("story5_concat", "softmax_from_logits") else 0)
    out = res.json
    assert out["model"]["saved_by"].startswith("keras 3")
    assert set(out["loss_config"]) == set(out["model"]["losses"])
    assert set(out["training_layers"]) == {"dropout", "batchnorm", "frozen_batchnorm", "noise"}


def test_inspect_lists_regularizers_and_training_layers():
    res = run_cli("inspect", fixture_files("regularized")[0], "--format", "json")
    regs = {(r["layer"], r["attribute"]) for r in res.json["regularizers"]}
    assert regs == {("l2_dense", "kernel"), ("act_reg", "activity")}
    res = run_cli("inspect", fixture_files("frozen_bn_dropout")[0])
    assert res.code == 0
    assert "head_dropout" in res.stdout and "b_bn" in res.stdout and "Loss configuration" in res.stdout


def test_batch_size_probe_on_large_data_uses_a_prefix(tmp_path):
    """On more than 512 samples the second batch size runs on the first 512 only; both values are
    Keras's own evaluate on those samples."""
    import keras
    import numpy as np

    rng = np.random.default_rng(5)
    x = rng.normal(size=(1000, 3)).astype("float32")
    y = (x @ np.array([[1.0], [0.5], [-1.0]])).astype("float32")
    m = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
    m.compile("sgd", keras.losses.MeanSquaredError(reduction="sum"))
    m.save(tmp_path / "m.keras")
    np.savez(tmp_path / "d.npz", x=x, y=y)
    res = run_cli("compare", tmp_path / "m.keras", tmp_path / "d.npz", "--format", "json")
    probe = res.json["reduction_trace"]["batch_size_probe"]
    assert probe["samples"] == 512 and probe["batch_sizes"] == [32, 16]
    model = keras.saving.load_model(tmp_path / "m.keras")
    at32 = model.evaluate(x[:512], y[:512], batch_size=32, verbose=0)
    at16 = model.evaluate(x[:512], y[:512], batch_size=16, verbose=0)
    assert probe["values"][0] == pytest.approx(at32, rel=1e-4)
    assert probe["values"][1] == pytest.approx(at16, rel=1e-4)
    f = finding(res, "batch-size-dependence")
    assert "first 512 samples" in f["message"] and f["magnitude"] == pytest.approx(at16 / at32, rel=1e-4)
