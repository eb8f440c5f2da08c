"""metric-vs-loss, metric-batch-mean, metric-threshold, target-shape and target-range, each on a model
built for it in tmp_path and checked against numbers Keras (or the user's numpy) gives in the same test;
none of them on the healthy fixtures."""

from __future__ import annotations

import textwrap

import numpy as np
import pytest

from tests.conftest import rel

pytestmark = pytest.mark.keras

NEW_CODES = {"metric-vs-loss", "metric-batch-mean", "metric-threshold", "metric-class-ids", "target-shape",
             "target-range", "uneven-shards", "replica-aggregation", "worker-disagreement"}


def _compare(model_path, data_path, **kw):
    from losscheck.compare import run_compare
    from losscheck.core.config import Config

    return run_compare(Config(model_path=model_path, data_path=data_path, **kw))


class _Inference:
    """What compare builds these findings from, without its fit and training-mode passes: the file
    loaded as compare loads it, the inference pass with the metric and target observers."""

    def __init__(self, model_path, data_path, **kw) -> None:
        from losscheck.core.config import Config
        from losscheck.loading.inputs import load_inputs
        from losscheck.measurements import Measurements, frozen_mapping
        from losscheck.probes.metric_facts import metric_measurements
        from losscheck.probes.metrics import MetricsObserver
        from losscheck.probes.prober import Prober
        from losscheck.probes.targets import TargetsObserver
        from losscheck.rules import judge_areas

        cfg = Config(model_path=model_path, data_path=data_path, **kw)
        loaded, data = load_inputs(cfg, lambda _m: None)
        try:
            obs, targets = MetricsObserver(loaded), TargetsObserver(loaded)
            inf = Prober(loaded, data, cfg.batch_size).inference_pass([obs, targets], metrics=True)
            measured = Measurements("compare", rtol=cfg.rtol,
                                    figures=frozen_mapping({"evaluate": inf.evaluate,
                                                            "regularization": inf.regularization}),
                                    metrics=metric_measurements(obs, targets, inf, loaded, data))
            self.findings = list(judge_areas(measured, ("metrics",)))
            self.figures = {"evaluate": inf.evaluate}
            self.sections = {"metrics": obs.section(inf.metrics)}
        finally:
            data.close()


def _codes(report, code):
    return [f for f in report.findings if f.code == code]


def _dense(keras, n_in, units, activation=None, reg=None, name="out"):
    inp = keras.Input((n_in,), name="x")
    h = keras.layers.Dense(6, activation="relu", kernel_regularizer=reg)(inp)
    return keras.Model(inp, keras.layers.Dense(units, activation=activation, name=name)(h))


def test_metric_vs_loss_split(tmp_path):
    import keras

    rng = np.random.default_rng(0)
    keras.utils.set_random_seed(0)
    model = _dense(keras, 3, 1, reg=keras.regularizers.L2(0.05))
    model.compile("sgd", "mse", metrics=["mse"])
    x = rng.normal(size=(70, 3)).astype("float32")
    y = rng.normal(size=(70, 1)).astype("float32")
    sw = rng.uniform(0.1, 3.0, 70).astype("float32")
    model.save(tmp_path / "model.keras")
    np.savez(tmp_path / "data.npz", x=x, y=y, sample_weight=sw)
    expected = model.evaluate(x, y, sample_weight=sw, batch_size=32, verbose=0, return_dict=True)
    report = _compare(tmp_path / "model.keras", tmp_path / "data.npz")
    (f,) = _codes(report, "metric-vs-loss")
    assert rel(f.magnitude, expected["loss"] - expected["mse"]) < 1e-4
    assert "penalties" in f.message and "sample weights" in f.message
    assert rel(report.sections["metrics"]["mse"]["evaluate"], expected["mse"]) < 1e-4


def test_metric_vs_loss_not_when_equal(tmp_path):
    import keras

    rng = np.random.default_rng(1)
    model = _dense(keras, 3, 1)
    model.compile("sgd", "mae", metrics=["mae", "mse"])
    x = rng.normal(size=(64, 3)).astype("float32")
    np.savez(tmp_path / "data.npz", x=x, y=rng.normal(size=(64, 1)).astype("float32"))
    model.save(tmp_path / "model.keras")
    report = _Inference(tmp_path / "model.keras", tmp_path / "data.npz")
    assert not {f.code for f in report.findings} & NEW_CODES
    assert set(report.sections["metrics"]) == {"mae", "mse"}


def test_metric_batch_mean(tmp_path):
    import importlib.util

    import keras

    src = tmp_path / "dice_metrics.py"
    src.write_text(textwrap.dedent("""
        import keras

        def batch_dice(y_true, y_pred):
            inter = keras.ops.sum(y_true * y_pred)
            return 2.0 * inter / (keras.ops.sum(y_true) + keras.ops.sum(y_pred) + 1e-6)
    """))
    spec = importlib.util.spec_from_file_location("dice_metrics_t", src)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    rng = np.random.default_rng(2)
    keras.utils.set_random_seed(2)
    model = _dense(keras, 4, 1, activation="sigmoid")
    model.compile("sgd", "binary_crossentropy", metrics=[mod.batch_dice])
    x = rng.normal(size=(70, 4)).astype("float32")
    y = (rng.random((70, 1)) < 0.3).astype("float32")
    model.save(tmp_path / "model.keras")
    np.savez(tmp_path / "data.npz", x=x, y=y)
    expected = model.evaluate(x, y, batch_size=32, verbose=0, return_dict=True)["batch_dice"]
    p = model.predict(x, verbose=0)
    dataset = 2 * np.sum(y * p) / (np.sum(y) + np.sum(p) + 1e-6)
    report = _Inference(tmp_path / "model.keras", tmp_path / "data.npz", custom_objects=src)
    (f,) = _codes(report, "metric-batch-mean")
    assert rel(report.sections["metrics"]["batch_dice"]["evaluate"], expected) < 1e-4
    assert report.sections["metrics"]["batch_dice"]["manual"] is None
    assert rel(f.magnitude, expected - dataset) < 1e-3
    assert "3 batch values" in f.message and "last one of 6" in f.message


def test_metric_threshold_on_logits(tmp_path):
    import keras

    rng = np.random.default_rng(3)
    keras.utils.set_random_seed(3)
    model = _dense(keras, 4, 1)  # linear: logits
    model.compile("sgd", keras.losses.BinaryCrossentropy(from_logits=True),
                  metrics=[keras.metrics.BinaryAccuracy(), keras.metrics.AUC(from_logits=True)])
    x = (rng.normal(size=(80, 4)) * 3).astype("float32")
    y = (rng.random((80, 1)) < 0.5).astype("float32")
    model.save(tmp_path / "model.keras")
    np.savez(tmp_path / "data.npz", x=x, y=y)
    ev = model.evaluate(x, y, batch_size=32, verbose=0, return_dict=True)
    right = keras.metrics.BinaryAccuracy(threshold=0.0)
    right.update_state(y, model.predict(x, verbose=0))
    report = _Inference(tmp_path / "model.keras", tmp_path / "data.npz")
    (f,) = _codes(report, "metric-threshold")  # AUC(from_logits=True) is fine
    assert str(f.severity) == "warning" and f.subject == "out"
    assert rel(f.magnitude, ev["binary_accuracy"] - float(right.result())) < 1e-4


def test_target_shape_flat_targets(tmp_path):
    """y of shape (n,) against an (n, 1) output: accepted (Keras expands y), and the finding gives the
    number np.mean((y - p)**2) gives on predict() output."""
    import keras

    rng = np.random.default_rng(4)
    model = _dense(keras, 3, 1)
    model.compile("sgd", "mse")
    x = rng.normal(size=(50, 3)).astype("float32")
    p = model.predict(x, verbose=0).astype(np.float64)
    y = (p[:, 0] + rng.normal(size=50) * 0.05).astype("float32")  # a good fit, shape (n,)
    model.save(tmp_path / "model.keras")
    np.savez(tmp_path / "data.npz", x=x, y=y)
    naive = float(np.mean((y.astype(np.float64) - p) ** 2))  # (50, 50)
    report = _Inference(tmp_path / "model.keras", tmp_path / "data.npz")
    (f,) = _codes(report, "target-shape")
    assert f"{naive:.6g}" in f.message
    right = float(np.mean((y.astype(np.float64) - p[:, 0]) ** 2))
    assert right < naive / 10 and rel(f.magnitude, naive - right) < 1e-4
    assert rel(report.figures["evaluate"], model.evaluate(x, y, batch_size=32, verbose=0)) < 1e-4


def test_target_shape_indices_against_classes(tmp_path):
    import keras

    rng = np.random.default_rng(5)
    model = _dense(keras, 3, 4, activation="softmax")
    model.compile("sgd", "mse")
    x = rng.normal(size=(60, 3)).astype("float32")
    y = rng.integers(0, 4, (60, 1)).astype("float32")
    model.save(tmp_path / "model.keras")
    np.savez(tmp_path / "data.npz", x=x, y=y)
    keras_value = model.evaluate(x, y, batch_size=32, verbose=0)
    one_hot = model.evaluate(x, np.eye(4, dtype="float32")[y[:, 0].astype(int)], batch_size=32, verbose=0)
    report = _Inference(tmp_path / "model.keras", tmp_path / "data.npz")
    (f,) = _codes(report, "target-shape")
    assert str(f.severity) == "warning"
    assert rel(f.magnitude, keras_value - one_hot) < 1e-4


@pytest.mark.parametrize("case", ["bce", "kld", "cce_rows"])
def test_target_range(tmp_path, case):
    import keras

    rng = np.random.default_rng(6)
    x = rng.normal(size=(40, 3)).astype("float32")
    if case == "bce":
        model = _dense(keras, 3, 1, activation="sigmoid")
        model.compile("sgd", "binary_crossentropy")
        y = rng.uniform(0, 2, (40, 1)).astype("float32")
        bad = int(np.sum(y > 1))
    elif case == "kld":
        model = _dense(keras, 3, 3, activation="softmax")
        model.compile("sgd", "kl_divergence")
        y = rng.normal(size=(40, 3)).astype("float32")
        bad = int(np.sum(y < 0))
    else:
        model = _dense(keras, 3, 3, activation="softmax")
        model.compile("sgd", "categorical_crossentropy")
        y = rng.uniform(0, 1, (40, 3)).astype("float32")
        bad = int(np.sum(np.abs(y.sum(-1) - 1) > 1e-3))
    model.save(tmp_path / "model.keras")
    np.savez(tmp_path / "data.npz", x=x, y=y)
    report = _Inference(tmp_path / "model.keras", tmp_path / "data.npz")
    found = _codes(report, "target-range")
    assert found and found[0].magnitude == bad and str(found[0].severity) == "warning"


def test_healthy_fixtures_get_none_of_the_new_codes():
    try:
        from test_compare_keras import (  # the module pytest imported: its cache is shared
            SCENARIOS,
            compare_json,
        )
    except ImportError:  # pragma: no cover
        from tests.test_compare_keras import SCENARIOS, compare_json
    for name in sorted(SCENARIOS):
        res, _, _ = compare_json(name)
        assert not {f["code"] for f in res.json["findings"]} & NEW_CODES, name


def test_metric_vs_loss_loss_weight(tmp_path):
    import keras

    rng = np.random.default_rng(9)
    model = _dense(keras, 3, 1)
    model.compile("sgd", "mse", loss_weights=2.5, metrics=["mse"])
    x = rng.normal(size=(64, 3)).astype("float32")
    y = rng.normal(size=(64, 1)).astype("float32")
    model.save(tmp_path / "model.keras")
    np.savez(tmp_path / "data.npz", x=x, y=y)
    expected = model.evaluate(x, y, batch_size=32, verbose=0, return_dict=True)
    report = _Inference(tmp_path / "model.keras", tmp_path / "data.npz")
    (f,) = _codes(report, "metric-vs-loss")
    assert rel(f.magnitude, expected["loss"] - expected["mse"]) < 1e-4
    assert "loss weight 2.5" in f.message and "sample weights" not in f.message
