"""The custom-step rule on hand-built records (no TensorFlow)."""

from __future__ import annotations

from losscheck.measurements import LoopMeasurements, Measurements, frozen_mapping
from losscheck.rules import RULES, load_rules

load_rules()


def _messages(loop, figures):
    return [f.message for f in RULES["custom-step"](Measurements("compare", figures=frozen_mapping(figures),
                                                                  loop=loop))]


def test_nothing_for_a_model_trained_the_default_way():
    assert _messages(None, {"evaluate": 1.0, "fit_epoch": 1.2}) == []


def test_overridden_steps_name_what_is_left_out_with_the_signed_gap():
    loop = LoopMeasurements(steps=("train_step", "test_step"), compiled_loss=False, training_mode=False,
                            manual=False, decomposed=False)
    (msg,) = _messages(loop, {"evaluate": 2.0, "fit_epoch": 1.5})
    assert msg.startswith("The model overrides train_step and test_step and is compiled without a loss.")
    assert "evaluate and fit_epoch are what Keras itself reports" in msg
    assert "the split of fit_epoch - evaluate (-0.5)" in msg
    assert "the training-mode figures" in msg and "manual and regularization" in msg


def test_an_add_loss_model_keeps_its_decomposition_and_training_mode_figures():
    loop = LoopMeasurements(steps=(), compiled_loss=False, add_loss=True, manual=False)
    (msg,) = _messages(loop, {"evaluate": 1.0, "fit_epoch": 0.9, "train_mode": 1.0})
    assert "only from add_loss" in msg and "split of" not in msg and "training-mode figures (" not in msg


def test_an_evaluate_keras_cannot_give_and_the_own_log_figures():
    loop = LoopMeasurements(steps=("train_step",), compiled_loss=False, training_mode=False, manual=False,
                            decomposed=False, evaluated=False, own_figures=("fit_epoch_kl_loss",))
    (msg,) = _messages(loop, {"fit_epoch_kl_loss": 0.2})
    assert "Its own logged losses are figures too: fit_epoch_kl_loss." in msg
    assert "evaluate (Keras's own evaluate gives no loss" in msg
