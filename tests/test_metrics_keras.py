"""Compiled metrics against Keras in the same test: every built-in metric class (with and without sample
weights), per-output metrics, weighted_metrics, metrics restored from a file's compile config."""

from __future__ import annotations

import numpy as np
import pytest

pytestmark = pytest.mark.keras

RTOL = 1e-4


def _keras():
    import keras

    return keras


def _family_metrics(family: str) -> list:
    """Every built-in metric class that fits an output family, with non-default options where it has them."""
    M = _keras().metrics
    if family == "binary":  # sigmoid (n, 3), multi-label 0/1 targets
        return [M.BinaryAccuracy(), M.BinaryAccuracy(threshold=0.3, name="acc_03"), M.Accuracy(),
                M.AUC(), M.AUC(curve="PR", name="pr_auc"), M.AUC(summation_method="minoring", name="auc_min"),
                M.AUC(summation_method="majoring", num_thresholds=17, name="auc_maj"),
                M.AUC(curve="PRGAIN", name="auc_gain"), M.AUC(thresholds=[0.2, 0.5, 0.7], name="auc_thr"),
                M.AUC(multi_label=True, name="auc_ml"), M.AUC(from_logits=True, name="auc_logits"),
                M.Precision(), M.Precision(thresholds=[0.3, 0.6], name="prec_2"),
                M.Precision(top_k=1, name="prec_top1"), M.Recall(class_id=1, name="recall_c1"), M.Recall(),
                M.TruePositives(), M.FalsePositives(), M.TrueNegatives(), M.FalseNegatives(thresholds=[0.2, 0.8]),
                M.PrecisionAtRecall(0.5), M.RecallAtPrecision(0.4), M.SensitivityAtSpecificity(0.5),
                M.SpecificityAtSensitivity(0.5), M.BinaryIoU(target_class_ids=[0, 1], threshold=0.4),
                M.BinaryCrossentropy(), M.BinaryCrossentropy(label_smoothing=0.1, name="bce_ls"),
                M.F1Score(threshold=0.5), M.FBetaScore(beta=2.0, average="macro", threshold=0.4),
                M.F1Score(average="micro", threshold=0.5, name="f1_micro"), M.Hinge(), M.SquaredHinge()]
    if family == "categorical":  # softmax (n, 3), one-hot targets
        return [M.CategoricalAccuracy(), M.TopKCategoricalAccuracy(k=2), M.CategoricalCrossentropy(),
                M.KLDivergence(), M.CategoricalHinge(), M.Poisson(), M.CosineSimilarity(),
                M.OneHotIoU(num_classes=3, target_class_ids=[0, 2]), M.OneHotMeanIoU(num_classes=3),
                M.F1Score(average="weighted"), M.F1Score(name="f1_argmax")]
    if family == "sparse":  # softmax (n, 3), class indices
        return [M.SparseCategoricalAccuracy(), M.SparseTopKCategoricalAccuracy(k=2),
                M.SparseCategoricalCrossentropy(), M.MeanIoU(num_classes=3, sparse_y_pred=False),
                M.IoU(num_classes=3, target_class_ids=[1], sparse_y_pred=False, name="iou_1")]
    # regression: linear (n, 2)
    return [M.MeanSquaredError(), M.MeanAbsoluteError(), M.MeanAbsolutePercentageError(),
            M.MeanSquaredLogarithmicError(), M.RootMeanSquaredError(), M.LogCoshError(), M.CosineSimilarity(),
            M.R2Score(), M.R2Score(class_aggregation="variance_weighted_average", name="r2_vw"),
            M.PearsonCorrelation(), M.ConcordanceCorrelation()]


def _family_model(family: str, n: int = 75, seed: int = 0):
    keras = _keras()
    rng = np.random.default_rng(seed)
    keras.utils.set_random_seed(seed)
    x = rng.normal(size=(n, 5)).astype("float32")
    inp = keras.Input((5,), name="x")
    if family == "binary":
        out = keras.layers.Dense(3, activation="sigmoid", name="y")(inp)
        y, loss = (rng.random((n, 3)) < 0.4).astype("float32"), "binary_crossentropy"
    elif family == "categorical":
        out = keras.layers.Dense(3, activation="softmax", name="y")(inp)
        y, loss = np.eye(3, dtype="float32")[rng.integers(0, 3, n)], "categorical_crossentropy"
    elif family == "sparse":
        out = keras.layers.Dense(3, activation="softmax", name="y")(inp)
        y, loss = rng.integers(0, 3, n).astype("int64"), "sparse_categorical_crossentropy"
    else:
        out = keras.layers.Dense(2, name="y")(inp)
        y, loss = (x[:, :2] * 0.5 + 1.5 + rng.normal(size=(n, 2)) * 0.3).astype("float32"), "mse"
    return keras.Model(inp, out), x, y, loss


def _measure(model_path, data_path, batch_size: int = 32) -> dict:
    """losscheck's metrics section: the file loaded and compiled as compare does, then the inference pass
    compare runs (the metrics ride on it; the fit and training-mode passes add nothing to them)."""
    from losscheck.core.config import Config
    from losscheck.loading.inputs import load_inputs
    from losscheck.probes.metrics import MetricsObserver
    from losscheck.probes.prober import Prober

    loaded, data = load_inputs(Config(model_path=model_path, data_path=data_path, batch_size=batch_size),
                               lambda _m: None)
    try:
        obs = MetricsObserver(loaded)
        inf = Prober(loaded, data, batch_size).inference_pass([obs], metrics=True)
        assert inf.metrics_error is None
        return obs.section(inf.metrics)
    finally:
        data.close()


def _close(a, b) -> bool:
    a, b = np.atleast_1d(np.asarray(a, np.float64)), np.atleast_1d(np.asarray(b, np.float64))
    return a.shape == b.shape and bool(np.all(np.abs(a - b) <= RTOL * np.maximum(np.abs(b), 1e-3)))


def _check_family(tmp_path, family: str, weighted: bool, metric_objs=None) -> None:
    keras = _keras()
    model, x, y, loss = _family_model(family)
    metrics = metric_objs if metric_objs is not None else _family_metrics(family)
    if weighted:  # Keras itself cannot weight BinaryIoU on (n, 3) targets with (n,) weights
        metrics = [m for m in metrics if type(m).__name__ != "BinaryIoU"]
    sw = np.random.default_rng(5).uniform(0.2, 3.0, len(x)).astype("float32") if weighted else None
    model.compile("sgd", loss, metrics=None if weighted else metrics, weighted_metrics=metrics if weighted else None)
    path = tmp_path / "model.keras"
    model.save(path)
    arrays = {"x": x, "y": y} if sw is None else {"x": x, "y": y, "sample_weight": sw}
    np.savez(tmp_path / "data.npz", **arrays)
    # Keras's own values: the file loaded and compiled by Keras itself (metrics from the compile config)
    expected = keras.saving.load_model(path).evaluate(x, y, sample_weight=sw, batch_size=32, verbose=0,
                                                      return_dict=True)
    section = _measure(path, tmp_path / "data.npz")
    names = [n for n in expected if n != "loss"]
    assert sorted(section) == sorted(names)
    for name in names:
        row = section[name]
        assert _close(row["evaluate"], expected[name]), (name, row["evaluate"], expected[name])
        assert row["manual"] is not None, (name, row.get("reason"))
        assert _close(row["manual"], expected[name]), (name, row["manual"], expected[name])
        assert row["weighted"] is weighted


@pytest.mark.parametrize("weighted", [False, True], ids=["plain", "sample-weights"])
def test_representative_metrics_match_keras(tmp_path, weighted):
    M = _keras().metrics
    subset = [M.BinaryAccuracy(), M.AUC(), M.Precision(), M.Recall(thresholds=[0.3, 0.6]), M.F1Score(threshold=0.5),
              M.BinaryIoU(), M.TruePositives(), M.MeanSquaredError(), M.PrecisionAtRecall(0.5)]
    _check_family(tmp_path, "binary", weighted, subset)


@pytest.mark.slow
@pytest.mark.parametrize("weighted", [False, True], ids=["plain", "sample-weights"])
@pytest.mark.parametrize("family", ["binary", "categorical", "sparse", "regression"])
def test_every_builtin_metric_class_matches_keras(tmp_path, family, weighted):
    _check_family(tmp_path, family, weighted)


def test_string_metrics_resolve_as_keras_and_per_output_metrics(tmp_path):
    """'accuracy' on a sigmoid output is binary, on a softmax with indices sparse; per-output dicts and
    weighted_metrics lists are named as Keras logs them (output_name prefix, weighted_ on a clash)."""
    keras = _keras()
    rng = np.random.default_rng(3)
    inp = keras.Input((4,), name="x")
    a = keras.layers.Dense(1, activation="sigmoid", name="a")(inp)
    b = keras.layers.Dense(3, activation="softmax", name="b")(inp)
    model = keras.Model(inp, [a, b])
    model.compile("sgd", ["binary_crossentropy", "sparse_categorical_crossentropy"], loss_weights=[1.0, 0.5],
                  metrics={"a": ["accuracy", keras.metrics.AUC()], "b": ["acc", "sparse_top_k_categorical_accuracy"]},
                  weighted_metrics=[["accuracy"], [keras.metrics.SparseCategoricalCrossentropy()]])
    x = rng.normal(size=(70, 4)).astype("float32")
    ya = (rng.random((70, 1)) < 0.5).astype("float32")
    yb = rng.integers(0, 3, 70)
    sw = rng.uniform(0.1, 2.0, 70).astype("float32")
    model.save(tmp_path / "model.keras")
    np.savez(tmp_path / "data.npz", x=x, y_a=ya, y_b=yb, sample_weight=sw)
    expected = keras.saving.load_model(tmp_path / "model.keras").evaluate(
        x, [ya, yb], sample_weight=sw, batch_size=32, verbose=0, return_dict=True)
    section = _measure(tmp_path / "model.keras", tmp_path / "data.npz")
    names = [n for n in expected if not n.endswith("loss")]
    assert sorted(section) == sorted(names)
    assert "a_weighted_accuracy" in section and section["a_accuracy"]["metric"] == "binary_accuracy"
    assert section["b_acc"]["metric"] == "sparse_categorical_accuracy"
    for name in names:
        assert _close(section[name]["evaluate"], expected[name]), name
        assert _close(section[name]["manual"], expected[name]), name
    assert section["b_sparse_categorical_crossentropy"]["weighted"] is True


def test_h5_training_config_metrics_restored(tmp_path):
    """A Keras 3 .h5 file: Keras's own load_model cannot compile it, losscheck compiles its metrics from
    the training_config and measures them; values match the model that was saved."""
    keras = _keras()
    model, x, y, _ = _family_model("binary", n=50, seed=2)
    model.compile("sgd", "bce", metrics=["accuracy", keras.metrics.AUC(num_thresholds=50)],
                  weighted_metrics=[keras.metrics.Precision(thresholds=0.3)])
    expected = model.evaluate(x, y, batch_size=32, verbose=0, return_dict=True)
    model.save(tmp_path / "model.h5")
    np.savez(tmp_path / "data.npz", x=x, y=y)
    section = _measure(tmp_path / "model.h5", tmp_path / "data.npz")
    assert sorted(section) == sorted(n for n in expected if n != "loss")
    for name, row in section.items():
        assert _close(row["evaluate"], expected[name]) and _close(row["manual"], expected[name]), name


def test_tf_keras_h5_metrics_restored(tmp_path):
    """A tf.keras 2.x .h5 (training_config in the tf.keras dialect): metrics rebuilt and measured."""
    tfk = pytest.importorskip("tf_keras")
    rng = np.random.default_rng(4)
    inp = tfk.Input((3,))
    out = tfk.layers.Dense(1, activation="sigmoid")(inp)
    model = tfk.Model(inp, out)
    model.compile("sgd", "binary_crossentropy", metrics=["accuracy", tfk.metrics.AUC(name="auc"), "mse"])
    x = rng.normal(size=(40, 3)).astype("float32")
    y = (rng.random((40, 1)) < 0.5).astype("float32")
    expected = model.evaluate(x, y, batch_size=32, verbose=0, return_dict=True)
    model.save(tmp_path / "model.h5")
    np.savez(tmp_path / "data.npz", x=x, y=y)
    section = _measure(tmp_path / "model.h5", tmp_path / "data.npz")
    assert {"accuracy", "auc", "mse"} <= set(section)
    for name in ("accuracy", "auc", "mse"):
        assert _close(section[name]["evaluate"], expected[name]), name
        assert _close(section[name]["manual"], expected[name]), name


def test_custom_metric_listed_without_manual_and_state_restored(tmp_path):
    """A custom metric class is measured by Keras and listed as not recomputed (manual null + reason);
    the pass leaves the model's metric state as it was."""
    keras = _keras()

    @keras.saving.register_keras_serializable(package="lc_test")
    class Peak(keras.metrics.Metric):
        def __init__(self, name="peak", **kw):
            super().__init__(name=name, **kw)
            self.v = self.add_variable(shape=(), initializer="zeros", name="v")

        def update_state(self, y_true, y_pred, sample_weight=None):
            self.v.assign(keras.ops.maximum(self.v, keras.ops.max(y_pred)))

        def result(self):
            return self.v

    model, x, y, loss = _family_model("regression", n=40)
    model.compile("sgd", loss, metrics=[Peak()])
    model.save(tmp_path / "model.keras")
    np.savez(tmp_path / "data.npz", x=x, y=y)
    from losscheck.core.config import Config
    from losscheck.loading.inputs import load_inputs
    from losscheck.probes.metrics import MetricsObserver
    from losscheck.probes.prober import Prober

    loaded, data = load_inputs(Config(model_path=tmp_path / "model.keras", data_path=tmp_path / "data.npz"),
                               lambda _m: None)
    obs = MetricsObserver(loaded)
    inf = Prober(loaded, data, 32).inference_pass([obs], metrics=True)
    before = [np.array(v) for v in loaded.model._compile_metrics.variables]
    expected = float(np.max(loaded.model.predict(x, verbose=0)))
    assert _close(inf.metrics["peak"], expected)
    row = obs.section(inf.metrics)["peak"]
    assert row["manual"] is None and "custom" in row["reason"]
    inf2 = Prober(loaded, data, 32).inference_pass([], metrics=True)
    assert _close(inf2.metrics["peak"], expected)
    after = [np.array(v) for v in loaded.model._compile_metrics.variables]
    assert all(np.array_equal(a, b) for a, b in zip(before, after, strict=True))


def _per_class_breakdown(tmp_path, name, model, x, y):
    """Save model and data as `name`.keras / `name`.npz and run breakdown --per-class on them: the
    report and its per-class metric rows by class."""
    from losscheck.commands.breakdown import run_breakdown
    from losscheck.core.config import Config

    model.save(tmp_path / f"{name}.keras")
    np.savez(tmp_path / f"{name}.npz", x=x, y=y)
    report = run_breakdown(Config(model_path=tmp_path / f"{name}.keras", data_path=tmp_path / f"{name}.npz"),
                           "per_class")
    return report, {r["class"]: r for r in report.sections["per_class_metrics"]}


def test_breakdown_per_class_metric_values(tmp_path):
    """breakdown --per-class: per-class accuracy, IoU and precision equal Keras's metrics restricted to
    that class (accuracy on the samples of the class, IoU/Precision with target_class_ids/class_id)."""
    keras = _keras()
    model, x, y, loss = _family_model("sparse", n=90, seed=7)
    model.compile("sgd", loss, metrics=["accuracy", keras.metrics.MeanIoU(num_classes=3, sparse_y_pred=False,
                                                                           name="mean_io_u")])
    report, rows = _per_class_breakdown(tmp_path, "model", model, x, y)
    p = model.predict(x, verbose=0)
    for c in range(3):
        acc = keras.metrics.SparseCategoricalAccuracy()
        acc.update_state(y[y == c], p[y == c])
        iou = keras.metrics.IoU(num_classes=3, target_class_ids=[c], sparse_y_pred=False)
        iou.update_state(y, p)
        assert _close(rows[c]["accuracy"], float(acc.result())), c
        assert _close(rows[c]["mean_io_u"], float(iou.result())), c
    assert set(report.sections["metrics"]) == {"accuracy", "mean_io_u"}

    bmodel, bx, by, bloss = _family_model("binary", n=60, seed=8)
    bmodel.compile("sgd", bloss, metrics=[keras.metrics.Precision(name="precision")])
    report, rows = _per_class_breakdown(tmp_path, "b", bmodel, bx, by)
    bp = bmodel.predict(bx, verbose=0)
    for c in range(3):
        prec = keras.metrics.Precision(class_id=c)
        prec.update_state(by, bp)
        assert _close(rows[c]["precision"], float(prec.result())), c
