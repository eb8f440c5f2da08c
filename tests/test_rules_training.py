"""The training area's rule on hand-built records (no TensorFlow)."""

from __future__ import annotations

import pytest

from losscheck.measurements import Measurements, TrainingNonFinite
from losscheck.rules import RULES, load_rules

load_rules()


def _findings(training):
    return RULES["nonfinite-in-training"](Measurements("compare", training=training))


def test_nothing_without_a_nonfinite_step():
    assert _findings(None) == []


@pytest.mark.parametrize("where, layer, variable, words", [
    ("input", None, None, "the batch itself holds NaN or Inf"),
    ("forward", "dense_3", None, "the output of layer dense_3"),
    ("loss", None, None, "log or a division of zero"),
    ("gradient", None, "out/kernel", "the gradient of out/kernel"),
    ("update", None, "hidden/kernel", "made hidden/kernel non-finite"),
])
def test_each_part_of_the_step_is_named_with_its_causes(where, layer, variable, words):
    t = TrainingNonFinite(epoch=2, step=3, samples=(64, 95), where=where, layer=layer, variable=variable,
                          last_finite_loss=0.5, gradient_norms=(("out/kernel", 12.5),))
    (f,) = _findings(t)
    assert str(f.severity) == "error"
    assert f.message.startswith("Training turned non-finite at epoch 2, step 3 (samples 64..95)")
    assert words in f.message and f"(where: {where})" in f.message
    assert "out/kernel 12.5" in f.message and "diverged" not in f.message
    assert f.subject == (layer or variable)


def test_a_loss_grown_huge_the_step_before_says_training_diverged():
    t = TrainingNonFinite(epoch=1, step=4, samples=(48, 63), where="forward", layer="out", last_finite_loss=3e20)
    (f,) = _findings(t)
    assert "training diverged" in f.message and f.advice.startswith("Lower the learning rate")


def test_a_step_that_replays_finite_says_so():
    (f,) = _findings(TrainingNonFinite(epoch=1, step=1, samples=(0, 31), where=None))
    assert "every part of that step was finite" in f.message


def test_a_step_not_taken_apart_names_no_samples_and_says_why():
    (f,) = _findings(TrainingNonFinite(epoch=2, step=3, samples=None, where=None,
                                       not_taken_apart="fit's batches are not the data's batches in order"))
    assert f.message.startswith("Training turned non-finite at epoch 2, step 3; that step is not taken apart: "
                                "fit's batches are not")
    assert "samples" not in f.message and "shuffle=False" in f.advice
