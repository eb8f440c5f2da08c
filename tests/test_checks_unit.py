"""Pure-Python parts of the loss-function area on hand-built inputs (no TensorFlow): smoothing floors,
the batch-size rule, the section renderers; the second batch size of the rerun (imports the probes)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from losscheck.measurements import Measurements, frozen_mapping
from losscheck.measurements.lossfn import BatchSizeRecord, LossFnMeasurements, OutputLossRecord, RankRecord
from losscheck.report.lossfn import loss_config_markdown, trace_markdown, trace_table
from losscheck.rules.lossfn import batch_size_dependence, smoothing_floor


@pytest.mark.parametrize("k,ls", [(2, 0.1), (4, 0.1), (10, 0.3)])
def test_categorical_floor_is_the_minimum_over_predictions(k, ls):
    q = np.full(k, ls / k)
    q[0] += 1 - ls  # smoothed one-hot target
    rng = np.random.default_rng(0)
    preds = rng.dirichlet(np.ones(k), size=2000)
    losses = -(np.log(preds) * q).sum(axis=1)
    floor = smoothing_floor("categorical_crossentropy", ls, k)
    assert losses.min() >= floor - 1e-12
    assert -(np.log(q) * q).sum() == pytest.approx(floor, rel=1e-12)


def test_binary_floor_and_unknown_kinds():
    ls = 0.2
    p = np.linspace(1e-4, 1 - 1e-4, 100001)
    t = 1 - ls / 2
    losses = -(t * np.log(p) + (1 - t) * np.log(1 - p))
    assert smoothing_floor("binary_crossentropy", ls, None) == pytest.approx(losses.min(), rel=1e-8)
    assert smoothing_floor("categorical_focal_crossentropy", ls, 3) is None


@pytest.mark.keras
def test_other_batch_size_changes_the_batching():
    from losscheck.probes.lossfn import batchsize

    assert batchsize.other_batch_size(32, 96) == 16
    assert batchsize.other_batch_size(32, 20) == 10  # one batch of 20 -> two of 10
    assert batchsize.other_batch_size(1, 5) == 2
    assert batchsize.other_batch_size(1, 1) is None


def _check(v1, v2, per, reduction, masked=frozenset(), rank_lost=False):
    """The batch-size rule on a one-output model with this rerun (rank_lost: its loss loses the batch axis)."""
    rank = RankRecord(((32, ()),), (32, 3), ok=False) if rank_lost else None
    out = OutputLossRecord("out", 0, "mean_squared_error", "mse", "mse", reduction, 1.0, (None, 3), None, None, None,
                           "", False, 0.0, rank=rank)
    lossfn = LossFnMeasurements(outputs=frozen_mapping({"out": out}), masked=masked,
                                batch_size=BatchSizeRecord(32, 16, v1, v2, frozen_mapping(per)))
    return batch_size_dependence(Measurements("compare", rtol=1e-4, lossfn=lossfn))


def test_batch_size_rule():
    assert _check(1.0, 1.0 + 1e-7, {"out": (1.0, 1.0 + 1e-7)}, "sum_over_batch_size") == []
    summed = (10.0, 5.0, {"out": (10.0, 5.0)})
    [f] = _check(*summed, "sum")
    assert f.code == "batch-size-dependence" and f.magnitude == pytest.approx(0.5)
    assert f.subject == "out" and "reduction=\"sum\"" in f.advice and "adds its per-sample losses" in f.message
    [f] = _check(*summed, "sum_over_batch_size", frozenset({"out"}))
    assert "own count of unmasked elements" in f.message and "normalizes per batch" in f.advice
    # a loss-rank output: the dependence is still reported (--select batch-size-dependence), loss-rank named
    [f] = _check(*summed, "sum_over_batch_size", rank_lost=True)
    assert f.code == "batch-size-dependence" and "see loss-rank" in f.message and "loss-rank" in f.advice
    assert _check(float("nan"), 5.0, {"out": (math.nan, 5.0)}, "sum") == []


TRACE = {"batch_size": 32, "batches": 3,
         "outputs": {"out": {"loss": "mse", "reduction": "sum_over_batch_size", "steps": [
             {"step": "element-wise values", "operation": "(y_pred - y_true)^2", "shape": [32, 4], "value": 0.5},
             {"step": "loss function", "operation": "mean over the last axis", "shape": [32], "value": 0.5},
             {"step": "reduction", "operation": "sum / 32 values", "shape": [], "value": 0.5},
             {"step": "loss weight", "operation": "x loss weight 1", "shape": [], "value": 0.5}]}},
         "total": [{"step": "penalties", "operation": "+ penalties", "shape": [], "value": 0.75},
                   {"step": "reported", "operation": "reported value", "shape": [], "value": None}],
         "batch_size_probe": {"batch_sizes": [32, 16], "values": [0.75, 0.75], "ratio": 1.0, "per_output": {}}}


def test_trace_renderers():
    md = trace_markdown(TRACE)
    assert "| out: mse (sum_over_batch_size) | element-wise values | (y_pred - y_true)^2 | (32, 4) | 0.5 |" in md
    assert "| model | reported | reported value | () | n/a |" in md
    assert "at batch 16: 0.75 (ratio 1;" in md
    from rich.console import Console

    console = Console(width=100, record=True, color_system=None)
    console.print(trace_table(TRACE))
    text = console.export_text()
    assert "Reduction trace" in text and "(32, 4)" in text and "0.75" in text


def test_loss_config_markdown():
    md = loss_config_markdown({"out": {"loss": "BinaryCrossentropy(from_logits=True)", "reduction": "sum",
                                       "options": {"from_logits": True}, "loss_weight": 2.0,
                                       "output_shape": [None, 3], "final_activation": None, "feature_axis": 1}})
    assert "| out | BinaryCrossentropy(from_logits=True) | sum | from_logits=True | 2 | (batch, 3) | unknown | 1 |" \
        in md
