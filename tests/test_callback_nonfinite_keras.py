"""LossCheck(on_nonfinite=True) on the user's own fit: it stops where TerminateOnNaN stops, and its
`nonfinite-in-training` finding names the step, samples and part of the step that Keras's own per-batch
logs and a GradientTape show in the same test; a healthy fit is left unchanged."""

from __future__ import annotations

import math

import numpy as np
import pytest

from tests.conftest import assert_same_training, first_nonfinite_layer, fit_until, tape_step

pytestmark = pytest.mark.keras

BATCH = 16
NAN_ROW = 37  # in batch 2 (from 0) of 16-sample batches


def _data(nan_row=None, scale=1.0):
    rng = np.random.default_rng(3)
    x = rng.normal(size=(64, 4)).astype("float32")
    y = (x.sum(axis=1, keepdims=True) * scale).astype("float32")
    if nan_row is not None:  # a NaN target: its loss is NaN (a NaN feature may be zeroed by the ReLU)
        y[nan_row, 0] = np.nan
    return x, y


def _model(lr):
    import keras

    keras.utils.set_random_seed(1)
    inputs = keras.Input((4,), name="x")
    h = keras.layers.Dense(8, activation="relu", name="hidden")(inputs)
    model = keras.Model(inputs, keras.layers.Dense(1, name="out")(h))
    model.compile(keras.optimizers.SGD(lr), "mse")
    return model


def _recorder():
    """A callback keeping Keras's per-batch logs of a fit: (epoch, batch, loss) after each batch."""
    import keras

    class Recorder(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            self.logs = []

        def on_epoch_begin(self, epoch, logs=None):
            self.epoch = epoch

        def on_train_batch_end(self, batch, logs=None):
            self.logs.append((self.epoch, batch, float(logs["loss"])))

    return Recorder()


def _fit(x, y, lr, callbacks, shuffle=False, epochs=3):
    import keras

    model = _model(lr)
    keras.utils.set_random_seed(0)
    history = model.fit(x, y, batch_size=BATCH, epochs=epochs, shuffle=shuffle, verbose=0, callbacks=callbacks)
    return model, history


def _stopped_runs(x, y, lr, shuffle=False):
    """(per-batch logs with TerminateOnNaN, per-batch logs with LossCheck, the LossCheck)."""
    import keras

    from losscheck.callbacks import LossCheck

    nan_logs, check_logs = _recorder(), _recorder()
    _fit(x, y, lr, [keras.callbacks.TerminateOnNaN(), nan_logs], shuffle)
    check = LossCheck(x=x, y=y, batch_size=BATCH, verbose=0, on_nonfinite=True, on="epoch_end")
    _fit(x, y, lr, [check, check_logs], shuffle)
    return nan_logs.logs, check_logs.logs, check


def _finding(check):
    """The last report's training_nonfinite section and finding (the epochs before each have their report)."""
    import json

    from losscheck.callbacks import summary
    from losscheck.report.json import report_dict
    from tests.test_report_schema import validate

    report = check.reports[-1]
    assert all("training_nonfinite" not in r.sections for r in check.reports[:-1])
    validate(json.loads(json.dumps(report_dict(report))))
    assert "training stopped: Training turned non-finite" in summary(report)  # the verbose=1 line
    (f,) = [f for f in report.findings if f.code == "nonfinite-in-training"]
    return report_dict(report)["training_nonfinite"], f


def test_a_nan_sample_stops_where_terminate_on_nan_stops():
    x, y = _data(nan_row=NAN_ROW)
    nan_logs, check_logs, check = _stopped_runs(x, y, 0.01)
    assert [r[:2] for r in check_logs] == [r[:2] for r in nan_logs]
    epoch, batch, loss = nan_logs[-1]
    assert not math.isfinite(loss) and all(math.isfinite(r[2]) for r in nan_logs[:-1])
    t, f = _finding(check)
    assert (t["epoch"], t["step"]) == (epoch + 1, batch + 1)
    first, last = batch * BATCH, (batch + 1) * BATCH - 1
    assert t["samples"] == [first, last] and first <= NAN_ROW <= last
    assert not np.all(np.isfinite(y[first:last + 1]))  # what Keras fit on in that step
    assert t["where"] == "input"
    assert f"epoch {epoch + 1}, step {batch + 1} (samples {first}..{last})" in f.message


def test_a_huge_learning_rate_is_located_at_the_update_before():
    """SGD(1e37): the first update overflows the weights while its loss is finite, so the logged loss
    turns non-finite one step later; the finding names the step whose update did it and its variable,
    as a GradientTape and the optimizer's update at the same weights show."""
    x, y = _data(scale=1e3)
    lr = 1e37
    nan_logs, check_logs, check = _stopped_runs(x, y, lr)
    assert [r[:2] for r in check_logs] == [r[:2] for r in nan_logs]
    epoch, batch, _ = nan_logs[-1]
    t, _ = _finding(check)
    assert t["where"] == "update"
    assert (t["epoch"], t["step"]) == (epoch + 1, batch)  # the step before the one TerminateOnNaN stopped at
    # Keras's own run up to that step, then the step by hand
    model = fit_until(_model(lr), x, y, BATCH, epoch, batch - 1)
    xb, yb = x[(batch - 1) * BATCH:batch * BATCH], y[(batch - 1) * BATCH:batch * BATCH]
    assert t["samples"] == [(batch - 1) * BATCH, batch * BATCH - 1]
    loss, bad_grad, first_bad = tape_step(model, xb, yb)
    assert np.isfinite(loss) and bad_grad is None
    assert first_bad is not None and t["variable"] == first_bad


def test_divergence_in_a_later_epoch_is_replayed_from_that_epoch():
    """SGD(0.2) on targets scaled by 10 diverges in the second epoch: the finding names the step
    TerminateOnNaN stopped at and the first layer whose output overflows there, as Keras's own fit up to
    that step and a forward pass layer by layer show."""
    x, y = _data(scale=10.0)
    nan_logs, check_logs, check = _stopped_runs(x, y, 0.2)
    assert [r[:2] for r in check_logs] == [r[:2] for r in nan_logs]
    epoch, batch, _ = nan_logs[-1]
    assert epoch > 0
    t, _ = _finding(check)
    assert (t["epoch"], t["step"]) == (epoch + 1, batch + 1)
    assert t["samples"] == [batch * BATCH, (batch + 1) * BATCH - 1]
    model = fit_until(_model(0.2), x, y, BATCH, epoch, batch)
    first_bad = first_nonfinite_layer(model, x[batch * BATCH:(batch + 1) * BATCH])
    assert first_bad is not None and (t["where"], t["layer"]) == ("forward", first_bad)


def test_a_shuffled_fit_stops_but_names_no_samples():
    x, y = _data(nan_row=NAN_ROW)
    nan_logs, check_logs, check = _stopped_runs(x, y, 0.01, shuffle=True)
    assert [r[:2] for r in check_logs] == [r[:2] for r in nan_logs]
    epoch, batch, _ = nan_logs[-1]
    t, f = _finding(check)
    assert (t["epoch"], t["step"]) == (epoch + 1, batch + 1)
    assert t["samples"] is None and t["where"] is None
    assert "shuffle" in t["not_taken_apart"] and "not taken apart" in f.message


def test_a_healthy_fit_is_unchanged_by_the_watch():
    from losscheck.callbacks import LossCheck

    x, y = _data()
    plain_model, plain = _fit(x, y, 0.01, [], epochs=2)
    check = LossCheck(x=x, y=y, batch_size=BATCH, verbose=0, on_nonfinite=True, on="epoch_end")
    model, history = _fit(x, y, 0.01, [check], epochs=2)
    assert_same_training(plain_model, plain, model, history)
    assert len(check.reports) == 2
    assert all("training_nonfinite" not in r.sections for r in check.reports)
