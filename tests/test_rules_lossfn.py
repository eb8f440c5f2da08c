"""The loss-function rules on hand-built Measurements (no TensorFlow): each code fires on the evidence
that makes it and stays quiet otherwise; messages carry what was measured; the area's order."""

from __future__ import annotations

import dataclasses
import math

import pytest

from losscheck.measurements import Measurements, frozen_mapping
from losscheck.measurements.lossfn import (
    BatchSizeRecord,
    LossFnMeasurements,
    NonFiniteSite,
    OutputLossRecord,
    RangeRecord,
    RankRecord,
)
from losscheck.rules import RULES, judge_areas, load_rules

CODES = ("non-finite", "loss-rank", "channels-first-axis", "from-logits-mismatch", "label-smoothing",
         "batch-size-dependence")


def out(name="out", index=0, kind="mean_squared_error", **kw) -> OutputLossRecord:
    base = dict(name=name, index=index, kind=kind, label=kind, loss_name=kind, reduction="sum_over_batch_size",
                weight=1.0, shape=(None, 3), activation="linear", activation_layer="dense", channels_axis=2,
                channels_reason="", from_logits=False, label_smoothing=0.0)
    base.update(kw)
    return OutputLossRecord(**base)


def lossfn(*outputs: OutputLossRecord, **kw) -> LossFnMeasurements:
    return LossFnMeasurements(outputs=frozen_mapping({o.name: o for o in outputs}), **kw)


def m(lf: LossFnMeasurements | None, **figures: float) -> Measurements:
    return Measurements("compare", rtol=1e-4, figures=frozen_mapping(figures or {"evaluate": 1.0}), lossfn=lf)


SCALAR = RankRecord(((1, ()), (7, ()), (32, ())), (32, 3), ok=False, factor=32.0)
PER_SAMPLE = RankRecord(((1, (1,)), (7, (7,)), (32, (32,))), (32, 3), ok=True)
BATCH_DICE = RankRecord(((1, ()), (7, ()), (32, ())), (32, 16, 16, 1), ok=False, factor=1.0)
PROBS = RangeRecord(0.01, 0.98, 0, 300, 1e-7, keras=0.4, flipped=0.9)
LOGITS = RangeRecord(-3.0, 4.0, 120, 300, 2.0, keras=1.7, flipped=0.6)
SUMMED = BatchSizeRecord(32, 16, 10.0, 5.0, frozen_mapping({"out": (10.0, 5.0)}))
FLAT = BatchSizeRecord(32, 16, 1.0, 1.0 + 1e-7, frozen_mapping({"out": (1.0, 1.0 + 1e-7)}))
NAN_INPUT = NonFiniteSite("input", name="x", sample=3, position=(1,), count=2, kind="NaN")
NAN_WEIGHT = NonFiniteSite("weight", name="dense/kernel", layer="dense", count=4)
NAN_LAYER = NonFiniteSite("layer", layer="log", sample=5, count=3, batch=(0, 32))
NAN_LOSS = NonFiniteSite("loss", name="out", batch=(32, 64))

# (id, code, measurements, expected count, words in the first message)
TABLE = [
    ("nonfinite-input", "non-finite", m(lossfn(out(), non_finite=(NAN_INPUT,)), evaluate=math.nan), 1,
     ("input array 'x' holds NaN at sample 3, position [1] (2 non-finite values", "evaluate (nan)")),
    ("nonfinite-input-finite-loss", "non-finite", m(lossfn(out(), non_finite=(NAN_INPUT,))), 1,
     ("stays finite here",)),
    ("nonfinite-weight", "non-finite", m(lossfn(out(), non_finite_weights=(NAN_WEIGHT,))), 1,
     ("Weight 'dense/kernel' of layer 'dense' holds 4 non-finite values",)),
    ("nonfinite-layer", "non-finite", m(lossfn(out(), non_finite=(NAN_LAYER,)), evaluate=math.nan), 1,
     ("layer 'log' outputs non-finite values first (sample 5, 3 values in the batch 0-31)",)),
    ("nonfinite-loss", "non-finite", m(lossfn(out(), non_finite=(NAN_LOSS,)), evaluate=math.nan), 1,
     ("the loss of output 'out' is non-finite on the batch 32-63",)),
    ("nonfinite-figure", "non-finite", m(lossfn(out()), evaluate=1.0, fit_epoch=math.inf), 1,
     ("the figure fit_epoch is inf",)),
    ("nonfinite-none", "non-finite", m(lossfn(out(), non_finite=())), 0, ()),
    # breakdown and the callback measure no loss function: a NaN figure is still named
    ("nonfinite-no-area", "non-finite", m(None, evaluate=math.nan), 1, ("the figure evaluate is nan",)),
    ("nonfinite-no-area-finite", "non-finite", m(None, evaluate=0.5), 0, ()),
    ("rank-scalar", "loss-rank", m(lossfn(out(kind="custom", loss_name="my_loss", rank=SCALAR))), 1,
     ("Loss 'my_loss' of output 'out' on y_pred (32, 3) returns a scalar", "It sums over the batch")),
    ("rank-with-rerun", "loss-rank", m(lossfn(out(kind="custom", rank=SCALAR), batch_size=SUMMED)), 1,
     ("Measured on the data: this output's loss is 10 at batch 32 and 5 at batch 16 (x0.5).",)),
    ("rank-ok", "loss-rank", m(lossfn(out(rank=PER_SAMPLE), batch_size=SUMMED)), 0, ()),
    ("rank-builtin-batch-level", "loss-rank",
     m(lossfn(out(kind="dice", loss_name="dice", shape=(None, 16, 16, 1), rank=BATCH_DICE, loss=0.4,
                  per_sample_loss=0.55, per_sample_axes=(1, 2, 3)))), 1,
     ("returns a scalar", "With axis=None, Dice computes one value over every element of the batch",
      "with one value per sample (Dice(axis=(1, 2, 3))) it is 0.55 (difference -0.15)")),
    ("rank-builtin-static", "loss-rank",
     m(lossfn(out(kind="tversky", loss_name="tversky", shape=(None, 8, 8, 2), rank=BATCH_DICE))), 1,
     ("With axis=None, Tversky computes",)),
    ("rank-builtin-with-axis", "loss-rank",
     m(lossfn(out(kind="dice", loss_name="dice", shape=(None, 16, 16, 1), rank=PER_SAMPLE))), 0, ()),
    ("rank-unprobed", "loss-rank", m(lossfn(out())), 0, ()),
    ("axis", "channels-first-axis", m(lossfn(out(shape=(None, 3, 8, 8), channels_axis=1, mismatched_axis=1,
                                                 channels_reason="channels-first conv"))), 1,
     ("Output 'out' has shape (batch, 3, 8, 8) with its 3 features on axis 1 (channels-first conv)",
      "averages over axis -1")),
    ("axis-fine", "channels-first-axis", m(lossfn(out(shape=(None, 8, 8, 3), channels_axis=3))), 0, ()),
    ("logits-graph", "from-logits-mismatch",
     m(lossfn(out(kind="categorical_crossentropy", activation="softmax", from_logits=True))), 1,
     ("ends in a softmax (layer 'dense')",)),
    ("logits-graph-confirmed", "from-logits-mismatch",
     m(lossfn(out(kind="categorical_crossentropy", activation="softmax", from_logits=True, ranges=PROBS))), 1,
     ("Confirmed from the outputs: every value lies in [0.01, 0.98] and each row sums to 1", "reports 0.4")),
    ("logits-unbounded", "from-logits-mismatch",
     m(lossfn(out(kind="binary_crossentropy", ranges=LOGITS))), 1,
     ("is not a probability", "40.0% outside [0, 1]", "1.7 as configured and 0.6 with from_logits=True")),
    ("logits-probabilities-as-logits", "from-logits-mismatch",
     m(lossfn(out(kind="categorical_crossentropy", activation=None, from_logits=True, ranges=PROBS))), 1,
     ("holds probabilities (every value in [0.01, 0.98]",)),
    ("logits-fine", "from-logits-mismatch",
     m(lossfn(out(kind="binary_crossentropy", activation="sigmoid", ranges=PROBS))), 0, ()),
    ("logits-not-crossentropy", "from-logits-mismatch",
     m(lossfn(out(activation="softmax", from_logits=True))), 0, ()),
    ("smoothing", "label-smoothing",
     m(lossfn(out(kind="categorical_crossentropy", label_smoothing=0.1, shape=(None, 10), loss=2.0))), 1,
     ("label_smoothing=0.1: one-hot targets become 0.91 / 0.01 over 10 classes",
      "On this data the loss is 2, so the floor is")),
    ("smoothing-inspect", "label-smoothing",
     m(lossfn(out(kind="binary_crossentropy", label_smoothing=0.2, shape=(None, 1)))), 1,
     ("0/1 targets become 0.1 / 0.9",)),
    ("smoothing-none", "label-smoothing", m(lossfn(out(kind="categorical_crossentropy"))), 0, ()),
    ("batchsize-sum", "batch-size-dependence",
     m(lossfn(out(reduction="sum"), batch_size=SUMMED)), 1,
     ("The reported loss depends on the batch size: 10 at batch 32, 5 at batch 16", "reduction=\"sum\"")),
    ("batchsize-flat", "batch-size-dependence", m(lossfn(out(), batch_size=FLAT)), 0, ()),
    ("batchsize-builtin-batch-level", "batch-size-dependence",
     m(lossfn(out(kind="dice", rank=BATCH_DICE), batch_size=SUMMED)), 1,
     ("its loss function reduces over the batch axis (see loss-rank)",)),
    ("batchsize-unmeasured", "batch-size-dependence", m(lossfn(out())), 0, ()),
]


@pytest.mark.parametrize("case,code,meas,count,words", TABLE, ids=[row[0] for row in TABLE])
def test_rule_table(case, code, meas, count, words):
    found = load_rules()[code](meas)
    assert len(found) == count and all(f.code == code for f in found)
    for w in words:
        assert w in found[0].message, (w, found[0].message)


def test_every_code_of_the_area_has_one_rule_and_a_firing_row():
    load_rules()
    assert {c for c, fn in RULES.items() if fn.__module__ == "losscheck.rules.lossfn"} == set(CODES)
    assert {row[1] for row in TABLE if row[3]} == set(CODES)


def test_magnitudes():
    [f] = RULES["loss-rank"](m(lossfn(out(kind="custom", rank=SCALAR))))
    assert f.magnitude == 32.0
    [f] = RULES["from-logits-mismatch"](m(lossfn(out(kind="categorical_crossentropy", activation="softmax",
                                                     from_logits=True, ranges=PROBS))))
    assert f.magnitude == pytest.approx(0.9 - 0.4)
    [f] = RULES["from-logits-mismatch"](m(lossfn(out(kind="binary_crossentropy", ranges=LOGITS))))
    assert f.magnitude == pytest.approx(1.7 - 0.6)
    [f] = RULES["label-smoothing"](m(lossfn(out(kind="binary_crossentropy", label_smoothing=0.2, shape=(None, 1)))))
    assert f.magnitude == pytest.approx(-(0.1 * math.log(0.1) + 0.9 * math.log(0.9)))
    [f] = RULES["non-finite"](m(lossfn(out(), non_finite=(NAN_INPUT,))))
    assert f.magnitude == 2.0 and f.subject == "x"


def test_findings_are_in_report_order():
    """No data first (weights; per output: rank, axis, logits from the graph, smoothing), then what the
    data showed (rank on real outputs, logits from the output values, batch size)."""
    a = out("a", 0, kind="categorical_crossentropy", label_smoothing=0.1, shape=(None, 4), ranges=LOGITS)
    b = out("b", 1, kind="custom", rank=dataclasses.replace(SCALAR, on_data=True))
    c = out("c", 2, kind="categorical_crossentropy", activation="softmax", from_logits=True, label_smoothing=0.1,
            shape=(None, 4), rank=SCALAR)
    rerun = BatchSizeRecord(32, 16, 10.0, 5.0, frozen_mapping({"a": (1.0, 1.0), "b": (10.0, 5.0), "c": (1.0, 1.0)}))
    found = judge_areas(m(lossfn(a, b, c, batch_size=rerun)), ("lossfn",))
    assert [(f.code, f.subject) for f in found] == [
        ("label-smoothing", "a"), ("loss-rank", "c"), ("from-logits-mismatch", "c"), ("label-smoothing", "c"),
        ("loss-rank", "b"), ("from-logits-mismatch", "a"), ("batch-size-dependence", "b")]
    weights = judge_areas(m(lossfn(c, non_finite_weights=(NAN_WEIGHT,))), ("lossfn",))
    assert [f.code for f in weights] == ["non-finite", "loss-rank", "from-logits-mismatch", "label-smoothing"]


def test_the_rules_and_records_need_no_tensorflow():
    import subprocess
    import sys

    code = ("import sys, losscheck.rules, losscheck.measurements.lossfn; losscheck.rules.load_rules(); "
            "sys.exit('tensorflow' in sys.modules or 'keras' in sys.modules)")
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0
