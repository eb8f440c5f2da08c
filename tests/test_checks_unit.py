"""Pure-Python parts of the loss checks on hand-built inputs (no TensorFlow): smoothing floors, the
batch-size rule, the section renderers."""

from __future__ import annotations

import math

import numpy as np
import pytest

from losscheck.checks import batchsize, smoothing
from losscheck.checks.render import loss_config_markdown, trace_markdown, trace_table


@pytest.mark.parametrize("k,ls", [(2, 0.1), (4, 0.1), (10, 0.3)])
def test_categorical_floor_is_the_minimum_over_predictions(k, ls):
    q = np.full(k, ls / k)
    q[0] += 1 - ls  # smoothed one-hot target
    rng = np.random.default_rng(0)
    preds = rng.dirichlet(np.ones(k), size=2000)
    losses = -(np.log(preds) * q).sum(axis=1)
    floor = smoothing.floor("categorical_crossentropy", ls, k)
    assert losses.min() >= floor - 1e-12
    assert -(np.log(q) * q).sum() == pytest.approx(floor, rel=1e-12)


def test_binary_floor_and_unknown_kinds():
    ls = 0.2
    p = np.linspace(1e-4, 1 - 1e-4, 100001)
    t = 1 - ls / 2
    losses = -(t * np.log(p) + (1 - t) * np.log(1 - p))
    assert smoothing.floor("binary_crossentropy", ls, None) == pytest.approx(losses.min(), rel=1e-8)
    assert smoothing.floor("categorical_focal_crossentropy", ls, 3) is None


def test_other_batch_size_changes_the_batching():
    assert batchsize.other_batch_size(32, 96) == 16
    assert batchsize.other_batch_size(32, 20) == 10  # one batch of 20 -> two of 10
    assert batchsize.other_batch_size(1, 5) == 2
    assert batchsize.other_batch_size(1, 1) is None


def _probe(v1, v2, per):
    return batchsize.BatchSizeProbe(32, 16, v1, v2, per)


def test_batch_size_rule():
    flat = _probe(1.0, 1.0 + 1e-7, {"out": (1.0, 1.0 + 1e-7)})
    assert batchsize.check(flat, 1e-4, {}, {"out": "sum_over_batch_size"}) == []
    summed = _probe(10.0, 5.0, {"out": (10.0, 5.0)})
    [f] = batchsize.check(summed, 1e-4, {}, {"out": "sum"})
    assert f.code == "batch-size-dependence" and f.magnitude == pytest.approx(0.5)
    assert f.subject == "out" and "reduction=\"sum\"" in f.advice and "adds its per-sample losses" in f.message
    [f] = batchsize.check(summed, 1e-4, {}, {"out": "sum_over_batch_size"}, frozenset({"out"}))
    assert "own count of unmasked elements" in f.message and "normalizes per batch" in f.advice
    # a loss-rank output: the dependence is still reported (--select batch-size-dependence), loss-rank named
    [f] = batchsize.check(summed, 1e-4, {"out": "loss-rank"}, {"out": "sum_over_batch_size"})
    assert f.code == "batch-size-dependence" and "see loss-rank" in f.message and "loss-rank" in f.advice
    nan = _probe(float("nan"), 5.0, {"out": (math.nan, 5.0)})
    assert batchsize.check(nan, 1e-4, {}, {"out": "sum"}) == []


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
