"""The metrics-area rules (metric-vs-loss, metric-batch-mean, metric-threshold, metric-class-ids,
target-shape, target-range) on hand-built Measurements: no TensorFlow, milliseconds."""

from __future__ import annotations

import dataclasses

import pytest

from losscheck.measurements import Measurements, frozen_mapping
from losscheck.measurements.metrics import (
    ClassIdFacts,
    MetricFacts,
    MetricMeasurements,
    OutputFacts,
    TargetFacts,
    ThresholdFacts,
)
from losscheck.rules import judge_areas

OUT = OutputFacts("out", data_loss=0.5, keras_log=0.5)
MSE = MetricFacts("mse", "mean_squared_error", "out", keras=0.5, same_as_loss=True)
PEAK = MetricFacts("peak", "peak", "out", keras=0.9, scalar=True, batch_sizes=(32, 32, 6), dataset=0.8)
ACC = MetricFacts("binary_accuracy", "binary_accuracy", "out", keras=0.4, threshold=ThresholdFacts(0.5, 0.9))
LOGITS = dataclasses.replace(OUT, binary_targets=True, activation=None, value_range=(-3.0, 4.0))
SIGMOID = dataclasses.replace(LOGITS, activation="sigmoid", value_range=(0.01, 0.99))
AT_ZERO = dataclasses.replace(ACC, threshold=ThresholdFacts(0.0, 0.9, at_half=0.7))
SOFTMAX = OutputFacts("out", data_loss=0.5, keras_log=0.5, binary_targets=True, activation="softmax",
                      value_range=(0.001, 0.99))
IOU = MetricFacts("mean_io_u", "MeanIoU", "out", keras=1 / 3, class_ids=ClassIdFacts(300, 290, "argmax", 0.2))


def _m(metrics=(), outputs=(OUT,), targets=(), evaluate=0.5, regularization=0.0, sample_weighted=False, rtol=1e-4):
    mm = MetricMeasurements(metrics=tuple(metrics), outputs=frozen_mapping({o.name: o for o in outputs}),
                            sample_weighted=sample_weighted, targets=tuple(targets))
    return Measurements("compare", rtol=rtol, figures=frozen_mapping({"evaluate": evaluate,
                                                                      "regularization": regularization}),
                        metrics=mm)


def _target(**kw):
    return TargetFacts("out", "mean_squared_error", "mean_squared_error", **kw)


CASES = {
    "no metrics area": (Measurements("compare"), []),
    "metric equals the loss": (_m([MSE]), []),
    "penalties in the loss": (_m([MSE], evaluate=0.6, regularization=0.1), ["metric-vs-loss"]),
    "within rtol": (_m([MSE], evaluate=0.50000001), []),
    "not the loss function": (_m([dataclasses.replace(MSE, same_as_loss=False)], evaluate=0.6), []),
    "Keras gave no number": (_m([dataclasses.replace(MSE, keras=None)], evaluate=0.6), []),
    "two outputs: the logged per-output loss": (
        _m([dataclasses.replace(MSE, keras=0.4)],
           outputs=(OUT, OutputFacts("other", data_loss=1.0, keras_log=1.0))), ["metric-vs-loss"]),
    "per-batch metric": (_m([PEAK]), ["metric-batch-mean"]),
    "per-batch metric, dataset not kept": (_m([dataclasses.replace(PEAK, dataset=None)]), ["metric-batch-mean"]),
    "per-sample metric": (_m([dataclasses.replace(PEAK, scalar=False)]), []),
    "threshold on logits": (_m([ACC], outputs=(LOGITS,)), ["metric-threshold"]),
    "threshold on sigmoid outputs": (_m([ACC], outputs=(dataclasses.replace(LOGITS, activation="sigmoid"),)), []),
    "threshold on outputs in [0, 1]": (_m([ACC], outputs=(dataclasses.replace(LOGITS, value_range=(0.0, 1.0)),)),
                                       []),
    "threshold, regression targets": (_m([ACC], outputs=(dataclasses.replace(LOGITS, binary_targets=False),)), []),
    "threshold, no value on probabilities": (
        _m([dataclasses.replace(ACC, threshold=ThresholdFacts(0.5, None))], outputs=(LOGITS,)), []),
    "threshold 0.0 on logits": (_m([AT_ZERO], outputs=(LOGITS,)), []),
    "threshold 0.0 on tanh values": (_m([AT_ZERO], outputs=(dataclasses.replace(LOGITS, activation="tanh"),)), []),
    "threshold 0.0 on probabilities": (_m([AT_ZERO], outputs=(SIGMOID,)), ["metric-threshold"]),
    "threshold 1.0 on probabilities": (
        _m([dataclasses.replace(ACC, threshold=ThresholdFacts((1.0,), 0.9, at_half=0.7))], outputs=(SIGMOID,)),
        ["metric-threshold"]),
    "threshold 0.3 on probabilities": (
        _m([dataclasses.replace(ACC, threshold=ThresholdFacts(0.3, 0.9))], outputs=(SIGMOID,)), []),
    "threshold 0.0 on probabilities, regression targets": (
        _m([AT_ZERO], outputs=(dataclasses.replace(SIGMOID, binary_targets=False),)), []),
    "no threshold (a row's maximum) on logits": (
        _m([dataclasses.replace(ACC, threshold=ThresholdFacts(None, 0.4))], outputs=(LOGITS,)), []),
    "AUC's threshold grid on logits": (
        _m([dataclasses.replace(ACC, threshold=ThresholdFacts((-1e-7, 0.5, 1.0000001), 0.8))], outputs=(LOGITS,)),
        ["metric-threshold"]),
    "MeanIoU on softmax probabilities": (_m([IOU], outputs=(SOFTMAX,)), ["metric-class-ids"]),
    "MeanIoU on logits": (_m([IOU], outputs=(dataclasses.replace(SOFTMAX, activation="linear",
                                                                value_range=(-4.0, 5.0)),)), ["metric-class-ids"]),
    "MeanIoU that Keras cannot compute": (_m([dataclasses.replace(IOU, keras=None)], outputs=(SOFTMAX,)),
                                          ["metric-class-ids"]),
    "MeanIoU on class ids": (_m([dataclasses.replace(IOU, class_ids=ClassIdFacts(300, 0, "argmax", 1 / 3))],
                                outputs=(SOFTMAX,)), []),
    "MeanIoU, class ids not made": (_m([dataclasses.replace(IOU, class_ids=ClassIdFacts(300, 290, "", None))],
                                       outputs=(SOFTMAX,)), []),
    "OneHotMeanIoU (not tracked)": (_m([dataclasses.replace(IOU, label="OneHotMeanIoU", class_ids=None)],
                                       outputs=(SOFTMAX,)), []),
    "y (n,) against (n, 1)": (_m(targets=[_target(naive=2.0, per_sample=1.0)]), ["target-shape"]),
    "y (n,) against (n, 1), naive figure not computed": (_m(targets=[_target(per_sample=1.0, flat_samples=9000)]),
                                                         ["target-shape"]),
    "class indices, element-wise loss": (_m(targets=[_target(classes=3, keras_on_indices=2.0, on_one_hot=0.5)]),
                                         ["target-shape"]),
    "targets outside [0, 1]": (_m(targets=[TargetFacts("out", "bce", "binary_crossentropy", values=10,
                                                       out_of_range=2, y_min=-1.0, y_max=2.0)]), ["target-range"]),
    "negative targets, Poisson": (_m(targets=[TargetFacts("out", "poisson", "poisson", values=10, out_of_range=3,
                                                          y_min=-2.0, y_max=1.0, negative_losses=1, loss_min=-0.5)]),
                                  ["target-range"]),
    "rows not summing to 1": (_m(targets=[_target(rows=10, bad_rows=4, row_min=0.5, row_max=1.0)]), ["target-range"]),
    "healthy targets": (_m(targets=[_target(values=10)]), []),
}


@pytest.mark.parametrize("name", list(CASES))
def test_metrics_rules(name):
    m, codes = CASES[name]
    assert [f.code for f in judge_areas(m, ("metrics",))] == codes


def test_metric_vs_loss_splits_the_gap():
    (f,) = judge_areas(_m([dataclasses.replace(MSE, keras=0.4)], evaluate=0.6, regularization=0.1,
                          sample_weighted=True), ("metrics",))
    assert f.between == ("loss", "mse") and f.magnitude == pytest.approx(0.2) and f.subject == "out"
    assert "penalties +0.1" in f.message and "sample weights +0.1" in f.message
    (f,) = judge_areas(_m([dataclasses.replace(MSE, keras=0.4)], outputs=(OUT, OutputFacts("b", data_loss=1.0))),
                       ("metrics",))
    assert f.between == ("out_loss", "mse") and "per-batch averaging +0.1" in f.message


def test_batch_mean_and_threshold_magnitudes():
    (f,) = judge_areas(_m([PEAK]), ("metrics",))
    assert f.magnitude == pytest.approx(0.1) and "3 batch values" in f.message and "the last one of 6" in f.message
    (f,) = judge_areas(_m([dataclasses.replace(PEAK, dataset=None)]), ("metrics",))
    assert f.magnitude is None and "not computed" in f.message
    (f,) = judge_areas(_m([ACC], outputs=(LOGITS,)), ("metrics",))
    assert f.magnitude == pytest.approx(-0.5) and "threshold 0.5" in f.message and "logits" in f.message
    multi = dataclasses.replace(ACC, threshold=ThresholdFacts((0.3, 0.7), 0.9))
    (f,) = judge_areas(_m([multi], outputs=(dataclasses.replace(LOGITS, activation="tanh"),)), ("metrics",))
    assert "its thresholds in [0, 1]" in f.message and "(p + 1) / 2" in f.message


def test_threshold_on_probabilities_and_class_ids_magnitudes():
    (f,) = judge_areas(_m([AT_ZERO], outputs=(SIGMOID,)), ("metrics",))
    assert f.magnitude == pytest.approx(0.4 - 0.7) and f.between is None
    assert "threshold 0" in f.message and "every prediction counts as positive" in f.message
    (f,) = judge_areas(_m([IOU], outputs=(SOFTMAX,)), ("metrics",))
    assert f.magnitude == pytest.approx(1 / 3 - 0.2) and str(f.severity) == "warning" and f.between is None
    assert "probabilities" in f.message and "290 of 300" in f.message and "0.2" in f.message
    (f,) = judge_areas(_m([dataclasses.replace(IOU, keras=None)], outputs=(SOFTMAX,)), ("metrics",))
    assert f.magnitude is None and "cannot compute" in f.message


def test_target_findings():
    (f,) = judge_areas(_m(targets=[_target(naive=2.0, per_sample=1.5)]), ("metrics",))
    assert f.magnitude == pytest.approx(0.5) and f.between is None and "np.mean((y - p)**2)" in f.message
    (f,) = judge_areas(_m(targets=[TargetFacts("out", "mae", "mean_absolute_error", per_sample=1.5,
                                               flat_samples=9000)]), ("metrics",))
    assert f.magnitude is None and "9000 samples" in f.message and "1.5" in f.message
    (f,) = judge_areas(_m(targets=[_target(classes=3, keras_on_indices=2.0, on_one_hot=0.5)]), ("metrics",))
    assert f.magnitude == pytest.approx(1.5) and str(f.severity) == "warning" and "3 classes" in f.message
    (f,) = judge_areas(_m(targets=[TargetFacts("out", "kl", "kl_divergence", values=8, out_of_range=2,
                                               y_min=-1.0)]), ("metrics",))
    assert f.magnitude == 2.0 and "KL divergence clips" in f.message


def test_findings_come_metric_by_metric_then_output_by_output():
    """Keras's metric order first (whatever the codes), then the targets per output."""
    two = OutputFacts("b", data_loss=1.0)
    targets = [TargetFacts("b", "binary_crossentropy", "binary_crossentropy", values=4,
                           out_of_range=1, y_min=-1.0, y_max=1.0),
               _target(naive=2.0, per_sample=1.0)]
    m = _m([ACC, PEAK, dataclasses.replace(MSE, keras=0.4)], outputs=(LOGITS, two), targets=targets)
    found = judge_areas(m, ("metrics",))
    assert [(f.code, f.subject) for f in found] == [("metric-threshold", "out"), ("metric-batch-mean", "out"),
                                                    ("metric-vs-loss", "out"), ("target-range", "b"),
                                                    ("target-shape", "out")]
