"""Known answers for the numpy reference, derived by hand from Keras's formulas (no TensorFlow)."""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pytest

from losscheck.reference import EpochMean, LossSpec, output_batch_loss, reduce_weighted
from losscheck.reference.formulas import HI, LO, elementwise
from losscheck.reference.reduction import match_rank, tracked_value, uses_logits
from losscheck.reference.variants import SemanticStats

A = np.array
LN2 = math.log(2.0)
CLIP_LOW = -math.log(float(np.float32(1e-7)))  # -log of float32(1e-7): 16.1181
CLIP_HIGH = -math.log(1.0 - float(np.float32(1.0 - 1e-7)))  # -log(1.19e-7): 15.9424


def loss(kind, t, p, reduction="sum_over_batch_size", **kw):
    opts = kw.pop("options", {})
    return output_batch_loss(LossSpec(kind, reduction, opts), A(t, float), A(p, float), **kw)


def values(kind, t, p, **opts):
    return elementwise(kind, A(t, float), A(p, float), opts)[0]


# -- reductions ---------------------------------------------------------------------------------------
V = A([1.0, 2.0, 3.0, 4.0])
W = A([1.0, 0.0, 2.0, 2.0])  # sum(w v) = 1 + 6 + 8 = 15, sum(w) = 5


@pytest.mark.parametrize("reduction, expected", [
    ("sum_over_batch_size", 15 / 4), ("mean", 15 / 4), ("sum", 15.0), ("mean_with_sample_weight", 3.0),
])
def test_reductions_with_weights(reduction, expected):
    assert reduce_weighted(V, W, None, reduction) == pytest.approx(expected)


def test_none_reduction_is_averaged_by_the_tracker():
    out = reduce_weighted(V, W, None, "none")
    assert out.tolist() == [1.0, 0.0, 6.0, 8.0]
    assert tracked_value(out) == pytest.approx(15 / 4)


def test_mean_with_sample_weight_without_weights_divides_by_count():
    assert reduce_weighted(V, None, None, "mean_with_sample_weight") == pytest.approx(2.5)


def test_scalar_weight_is_a_multiplier():
    assert reduce_weighted(V, A(2.0), None, "sum_over_batch_size") == pytest.approx(5.0)
    # mean_with_sample_weight divides by the scalar itself: the plain sum
    assert reduce_weighted(V, A(2.0), None, "mean_with_sample_weight") == pytest.approx(10.0)


def test_scalar_values_are_not_reduced_but_weighted():
    # a loss returning one number per batch: w * value is a (B,) vector, whose mean/sum is taken
    w = A([1.0, 2.0, 3.0])
    assert reduce_weighted(A(2.0), w, None, "sum_over_batch_size") == pytest.approx(4.0)
    assert reduce_weighted(A(2.0), w, None, "sum") == pytest.approx(12.0)
    assert reduce_weighted(A(2.0), None, None, "sum") == pytest.approx(2.0)


MV = A([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
MASK = A([[1, 1, 0], [1, 0, 0]], bool)  # sum(l m) = 7 over 3 valid


@pytest.mark.parametrize("reduction, expected", [
    ("sum_over_batch_size", 7 / 3), ("mean", 7 / 3), ("sum", 7.0), ("mean_with_sample_weight", 7 / 3),
])
def test_mask_normalization(reduction, expected):
    assert reduce_weighted(MV, None, MASK, reduction) == pytest.approx(expected)


def test_mask_with_column_weights():
    w = A([[2.0], [1.0]])  # sum(l w m) = 2 + 4 + 4 = 10; sum(w m) = 2 + 2 + 1 = 5
    assert reduce_weighted(MV, w, MASK, "sum_over_batch_size") == pytest.approx(10 / 3)
    assert reduce_weighted(MV, w, MASK, "mean_with_sample_weight") == pytest.approx(2.0)


def test_everything_masked_gives_zero():
    assert reduce_weighted(MV, None, np.zeros((2, 3), bool), "sum_over_batch_size") == 0.0


def test_sample_weight_per_sample_on_sequence_values_is_not_expanded():
    # Keras 3 multiplies (B,T) by (B,): broadcast along the LAST axis (columns weighted when B == T)
    v = A([[1.0, 2.0], [3.0, 4.0]])
    assert reduce_weighted(v, A([1.0, 0.0]), None, "sum_over_batch_size") == pytest.approx((1 + 3) / 4)
    with pytest.raises(ValueError):
        reduce_weighted(A([[1.0, 2.0, 3.0]] * 2), A([1.0, 0.0]), None, "sum_over_batch_size")


def test_match_rank():
    assert [a.shape for a in match_rank(np.zeros((4,)), np.zeros((4, 1)))] == [(4, 1), (4, 1)]
    assert [a.shape for a in match_rank(np.zeros((4, 3)), np.zeros((4, 3, 1)))] == [(4, 3), (4, 3)]
    assert [a.shape for a in match_rank(np.zeros((4, 3, 1)), np.zeros((4, 3)))] == [(4, 3), (4, 3)]
    assert [a.shape for a in match_rank(np.zeros((4, 3)), np.zeros((4,)))] == [(4, 3), (4,)]


def test_epoch_mean_weights_batches_by_size_so_masks_normalize_per_batch():
    spec = LossSpec("mean_absolute_error")
    mean = EpochMean()
    # one sample per batch, two time steps, one feature: values (1, 2)
    # batch 1: |errors| (1, 3), only the first valid -> 1; batch 2: (2, 2), both valid -> 2
    mean.add(output_batch_loss(spec, np.zeros((1, 2, 1)), A([[[1.0], [3.0]]]), mask=A([[1, 0]], bool)), 1)
    mean.add(output_batch_loss(spec, np.zeros((1, 2, 1)), A([[[2.0], [2.0]]]), mask=A([[1, 1]], bool)), 1)
    assert mean.value == pytest.approx(1.5)  # not the global 5/3


# -- regression formulas ---------------------------------------------------------------------------------
def test_regression_formulas():
    assert values("mean_squared_error", [[0, 1], [0, 0]], [[1, 1], [1, 0]]).tolist() == [0.5, 0.5]
    assert values("mean_absolute_error", [[0, 1]], [[1, 3]]).tolist() == [1.5]
    assert values("mean_absolute_percentage_error", [[2.0]], [[1.0]]).tolist() == [pytest.approx(50.0)]
    assert values("mean_absolute_percentage_error", [[0.0]], [[1.0]]).tolist() == [pytest.approx(1e9)]
    e = math.e - 1
    assert values("mean_squared_logarithmic_error", [[0.0]], [[e]])[0] == pytest.approx((1 - math.log1p(1e-7)) ** 2)
    assert values("huber", [[0.0, 0.0]], [[0.5, 2.0]])[0] == pytest.approx((0.125 + 1.5) / 2)
    assert values("huber", [[0.0]], [[2.0]], delta=0.5)[0] == pytest.approx(0.5 * 2 - 0.125)
    assert values("log_cosh", [[0.0, 0.0]], [[0.0, 1.0]])[0] == pytest.approx(math.log(math.cosh(1.0)) / 2)
    assert values("poisson", [[2.0]], [[1.0]])[0] == pytest.approx(1 - 2 * math.log(1 + 1e-7))
    assert values("cosine_similarity", [[1.0, 0.0]], [[1.0, 1.0]])[0] == pytest.approx(-1 / math.sqrt(2))
    assert values("cosine_similarity", [[1.0, 0.0]], [[0.0, 0.0]])[0] == 0.0
    kl = math.log(2) + 1e-7 * math.log(1e-7 / 0.5)
    assert values("kl_divergence", [[1.0, 0.0]], [[0.5, 0.5]])[0] == pytest.approx(kl, rel=1e-12)


def test_hinge_converts_binary_labels_only_when_all_are_binary():
    assert values("hinge", [[0.0, 1.0]], [[0.3, 0.8]])[0] == pytest.approx((1.3 + 0.2) / 2)
    assert values("hinge", [[2.0, 1.0]], [[0.3, 0.8]])[0] == pytest.approx((0.4 + 0.2) / 2)
    assert values("squared_hinge", [[0.0, 1.0]], [[0.3, 0.8]])[0] == pytest.approx((1.69 + 0.04) / 2)
    assert values("categorical_hinge", [[0, 1, 0]], [[0.2, 0.5, 0.3]])[0] == pytest.approx(0.8)


# -- crossentropies -----------------------------------------------------------------------------------------
def test_binary_crossentropy_clips_in_float32():
    assert values("binary_crossentropy", [[1.0]], [[0.0]])[0] == pytest.approx(CLIP_LOW)
    assert values("binary_crossentropy", [[0.0]], [[1.0]])[0] == pytest.approx(CLIP_HIGH)
    assert CLIP_LOW == pytest.approx(16.1181, abs=1e-4) and CLIP_HIGH == pytest.approx(15.9424, abs=1e-4)
    assert LO < 1e-7 * 1.0001 and HI < 1 - 1e-7


def test_binary_crossentropy_from_logits_and_smoothing():
    assert values("binary_crossentropy", [[0.0]], [[30.0]], from_logits=True)[0] == pytest.approx(30.0)
    assert values("binary_crossentropy", [[1.0]], [[0.5]], label_smoothing=0.2)[0] == pytest.approx(LN2)
    # smoothed target 0.9 against p = 0.9: the entropy of 0.9
    h = -(0.9 * math.log(0.9) + 0.1 * math.log(0.1))
    assert values("binary_crossentropy", [[1.0]], [[0.9]], label_smoothing=0.2)[0] == pytest.approx(h)


def test_cached_logits_are_used_whatever_from_logits_says():
    z = A([[30.0, 0.0, 0.0]])
    p = np.exp(z) / np.exp(z).sum()
    t = A([[0.0, 1.0, 0.0]])
    spec = LossSpec("categorical_crossentropy", options={"from_logits": True})
    assert output_batch_loss(spec, t, p, logits=z) == pytest.approx(30.0, rel=1e-9)
    plain = LossSpec("categorical_crossentropy")
    assert output_batch_loss(plain, t, p, logits=z) == pytest.approx(30.0, rel=1e-9)
    assert output_batch_loss(plain, t, p) == pytest.approx(CLIP_LOW)  # predict() probabilities


def test_logits_shortcut_rules():
    bce = LossSpec("binary_crossentropy")
    y3, p3 = np.zeros((2, 3)), np.full((2, 3, 1), 0.5)
    assert uses_logits(bce, np.zeros((2, 3, 1)), p3, p3)
    assert not uses_logits(bce, y3, p3, p3)  # rank matching squeezes y_pred: a new tensor
    assert uses_logits(bce, np.zeros((2,)), np.full((2, 1), 0.5), np.zeros((2, 1)))  # y_true expanded
    ign = LossSpec("sparse_categorical_crossentropy", options={"ignore_class": 0})
    assert not uses_logits(ign, np.zeros((2,)), np.full((2, 3), 1 / 3), np.zeros((2, 3)))
    bfce = LossSpec("binary_focal_crossentropy", options={"from_logits": True})
    assert not uses_logits(bfce, np.zeros((2, 1)), np.zeros((2, 1)), np.zeros((2, 1)))
    assert not uses_logits(LossSpec("categorical_focal_crossentropy"), np.zeros((2, 3)), np.zeros((2, 3)),
                           np.zeros((2, 3)))
    assert not uses_logits(LossSpec("mean_squared_error"), np.zeros((2, 3)), np.zeros((2, 3)), np.zeros((2, 3)))


def test_categorical_crossentropy_renormalizes_and_smooths_over_last_axis():
    assert values("categorical_crossentropy", [[1, 0]], [[0.2, 0.2]])[0] == pytest.approx(LN2)
    assert values("categorical_crossentropy", [[1, 0, 0]], [[1 / 3] * 3], label_smoothing=0.3)[0] == \
        pytest.approx(math.log(3))
    # smoothing 0.3 over 3 classes: t = (0.8, 0.1, 0.1) against p = (0.5, 0.25, 0.25)
    expected = -(0.8 * math.log(0.5) + 0.2 * math.log(0.25))
    assert values("categorical_crossentropy", [[1, 0, 0]], [[0.5, 0.25, 0.25]], label_smoothing=0.3)[0] == \
        pytest.approx(expected)


def test_sparse_categorical_crossentropy_renormalizes_after_clipping():
    assert values("sparse_categorical_crossentropy", [0], [[0.2, 0.2]])[0] == pytest.approx(LN2)
    assert values("sparse_categorical_crossentropy", [[1]], [[0.25, 0.75]])[0] == pytest.approx(-math.log(0.75))
    z = A([[2.0, 0.0]])
    expected = math.log(1 + math.exp(2.0))  # -log softmax(z)[1]
    assert values("sparse_categorical_crossentropy", [1], z, from_logits=True)[0] == pytest.approx(expected)


def test_sparse_ignore_class_masks_and_normalizes_by_valid_count():
    spec = LossSpec("sparse_categorical_crossentropy", options={"ignore_class": 1})
    p = A([[0.5, 0.5], [0.9, 0.1], [0.1, 0.9]])
    assert output_batch_loss(spec, A([0, 1, 1]), p) == pytest.approx(LN2)  # only the first counts
    assert output_batch_loss(spec, A([0, 1, 1]), p, logits=np.zeros((3, 2))) == pytest.approx(LN2)
    assert output_batch_loss(LossSpec(spec.kind, "sum", spec.options), A([0, 0, 1]), p) == \
        pytest.approx(LN2 - math.log(0.9))


def test_focal_losses():
    f = values("binary_focal_crossentropy", [[1.0]], [[0.5]])[0]
    assert f == pytest.approx(0.25 * LN2)
    fb = values("binary_focal_crossentropy", [[1.0]], [[0.5]], apply_class_balancing=True, alpha=0.25)[0]
    assert fb == pytest.approx(0.25 * 0.25 * LN2)
    # from_logits: p = sigmoid(0) = 0.5, bce from the logit
    assert values("binary_focal_crossentropy", [[1.0]], [[0.0]], from_logits=True)[0] == pytest.approx(0.25 * LN2)
    # smoothing applies to the target used everywhere: t = 0.75 with ls = 0.5, p = 0.5 -> p_t = 0.5
    assert values("binary_focal_crossentropy", [[1.0]], [[0.5]], label_smoothing=0.5)[0] == pytest.approx(0.25 * LN2)
    c = values("categorical_focal_crossentropy", [[1.0, 0.0]], [[0.5, 0.5]])[0]
    assert c == pytest.approx(0.25 * 0.25 * LN2)
    c1 = values("categorical_focal_crossentropy", [[1.0, 0.0]], [[0.0, 0.0]], from_logits=True, gamma=1.0, alpha=1.0)[0]
    assert c1 == pytest.approx(0.5 * LN2)


def test_generalized_cross_entropy():
    assert values("categorical_generalized_cross_entropy", [1], [[0.75, 0.25]], q=0.5)[0] == pytest.approx(1.0)
    assert values("categorical_generalized_cross_entropy", [0], [[1.0, 0.0]], q=0.5)[0] == pytest.approx(0.0)
    assert values("categorical_generalized_cross_entropy", [5], [[1.0, 0.0]], q=0.5)[0] == pytest.approx(2.0)


def test_dice_and_tversky():
    t, p = [[1.0, 1.0, 0.0, 0.0]], [[1.0, 0.0, 0.0, 1.0]]
    d = values("dice", t, p)
    assert d.shape == () and float(d) == pytest.approx(1 - 2 / (4 + 1e-7))
    assert values("dice", t, p, axis=[1]).tolist() == [pytest.approx(0.5)]
    t2 = [[1.0, 1.0, 1.0, 0.0]]  # TP 1, Keras "fp" = sum((1-p) t) = 2, "fn" = sum(p (1-t)) = 1
    assert float(values("tversky", t2, p, alpha=0.7, beta=0.3)) == pytest.approx(1 - 1 / (1 + 1.4 + 0.3 + 1e-7))


def test_circle_loss_and_its_mask():
    emb = A([[1.0, 0.0], [0.6, 0.8], [0.0, 1.0]])
    out, mask = elementwise("circle", A([0, 0, 1]), emb, {"gamma": 1.0, "margin": 0.4})
    # row 0: positive 1 at distance 0.4 -> weight 0.8, term -1*0.8*(0.4-0.4) = 0;
    #        negative 2 at distance 1 -> weight 0.4, term 0.4*(0.6-1) = -0.16; softplus(0 - 0.16)
    assert out[0] == pytest.approx(math.log1p(math.exp(-0.16)))
    # row 2 has no positive: lse over nothing = -inf, softplus(-inf) = 0 -> masked out
    assert out[2] == 0.0 and mask.tolist() == [True, True, False]


def test_ctc():
    z = np.zeros((1, 1, 2))
    assert values("ctc", [[1]], z)[0] == pytest.approx(LN2)  # one frame: softmax(0, 0)[1]
    # two frames, label (1): paths 11, 01, 10 of 4 equally likely ones
    assert values("ctc", [[1, 0]], np.zeros((1, 2, 2)))[0] == pytest.approx(-math.log(3 / 4))
    # empty label: -log p(all blank)
    assert values("ctc", [[0]], np.zeros((1, 3, 2)))[0] == pytest.approx(3 * LN2)
    # label (1, 1) needs a blank between the repeats: over 3 frames only 1-0-1 of 8 paths
    assert values("ctc", [[1, 1]], np.zeros((1, 3, 2)))[0] == pytest.approx(3 * LN2)
    assert values("ctc", [[1, 1]], np.zeros((1, 2, 2)))[0] == math.inf


# -- natural-numpy variants -----------------------------------------------------------------------------------
def _batch(y, p, *, logits=None, mask=None, sw=None, kind="categorical_crossentropy", reduction="sum_over_batch_size"):
    spec = LossSpec(kind, reduction)
    keras_value = output_batch_loss(spec, y, p, sample_weight=sw, mask=mask, logits=logits)
    b = SimpleNamespace(y=[y], outputs=[p], logits=[logits], masks=[mask], values=[None], sample_weight=sw,
                        output_losses={"out": keras_value}, n=len(y), raw_logits=[None], activations=[None])
    return spec, b


def test_variants_measure_the_logits_shortcut():
    z = A([[30.0, 0.0, 0.0]])
    p = (np.exp(z) / np.exp(z).sum()).astype(np.float32)
    spec, b = _batch(A([[0.0, 1.0, 0.0]]), p, logits=z)
    stats = SemanticStats({"out": spec}, {"out": 1.0}, ["out"])
    stats(b)
    fig = stats.summary()["figures"]
    assert fig["keras"] == pytest.approx(30.0) and fig["probabilities"] == pytest.approx(CLIP_LOW)
    assert stats.summary()["facts"]["out"].logits_used


def test_variants_measure_masks_and_clipping():
    y = A([[1.0, 0.0], [1.0, 1.0]])[..., None]
    p = A([[0.0, 0.5], [0.5, 0.5]], np.float32)[..., None]
    mask = A([[True, False], [True, True]])
    spec, b = _batch(y, p, mask=mask, kind="binary_crossentropy")
    stats = SemanticStats({"out": spec}, {"out": 1.0}, ["out"])
    stats(b)
    fig = stats.summary()["figures"]
    assert fig["no_weights"] == pytest.approx((CLIP_LOW + 2 * LN2) / 3)
    assert fig["no_masks"] == pytest.approx((CLIP_LOW + 3 * LN2) / 4)
    assert fig["unclipped"] == math.inf  # -log(0)
    facts = stats.summary()["facts"]["out"]
    assert facts.masked and facts.clipped and facts.clip_active == 1


def _semantic(fig: dict, facts: dict, evaluate: float, manual: float | None):
    """The semantics rules' findings and the natural_numpy section on a hand-set chain."""
    from losscheck.measurements import Measurements, SemanticMeasurements, frozen_mapping
    from losscheck.rules import judge_areas

    sem = SemanticMeasurements.of({"figures": fig, "facts": facts})
    figures = {"evaluate": evaluate, **({"manual": manual} if manual is not None else {})}
    found = judge_areas(Measurements("compare", 1e-4, frozen_mapping(figures), semantics=sem), ("semantics",))
    return {f.code: f for f in found}, sem.section()


def test_semantic_findings_from_the_chain():
    facts = {"out": SimpleNamespace(masked=True, masked_fraction=[1.0, 4.0], logits_used=True, clipped=False,
                                    clip_active=0, low_precision=None)}
    fig = {"keras": 2.0, "no_weights": 2.0, "no_masks": 1.5, "probabilities": 1.0, "unclipped": 1.5,
           "float64_outputs": 2.0}
    found, section = _semantic(fig, facts, evaluate=2.0, manual=2.0)
    assert set(found) == {"mask", "logits-shortcut"}
    assert found["mask"].magnitude == pytest.approx(0.5) and "25.0%" in found["mask"].message
    assert found["logits-shortcut"].magnitude == pytest.approx(0.5)
    assert section["probabilities"] == 1.0
    fig.update(no_masks=2.0, probabilities=2.0 + 1e-5)  # below rtol * |evaluate|: nothing to say
    assert set(_semantic(fig, facts, evaluate=2.0, manual=2.0)[0]) == set()
    fig.update(no_masks=1.5, probabilities=1.0)  # no manual figure: the chain is not judged
    assert set(_semantic(fig, facts, evaluate=2.0, manual=None)[0]) == set()


def test_semantic_findings_clipping_to_infinity_and_mixed_precision():
    facts = {"a": SimpleNamespace(masked=False, masked_fraction=[0, 0], logits_used=False, clipped=True,
                                  clip_active=3, low_precision="float16")}
    fig = {"keras": 5.0, "no_weights": 5.0, "no_masks": 5.0, "probabilities": 5.0, "unclipped": math.inf,
           "float64_outputs": 9.0}
    found, section = _semantic(fig, facts, evaluate=5.0, manual=5.0)
    assert found["probability-clipping"].magnitude is None and "infinite" in found["probability-clipping"].message
    assert found["mixed-precision"].magnitude == pytest.approx(-4.0)
    assert section["unclipped"] is None
    assert "unexplained" not in found


def test_prefix_mean_is_batch_weighted_over_leading_batches():
    from losscheck.reference import prefix_mean

    batches = [(4, 1.0), (4, 3.0), (2, 10.0)]
    assert prefix_mean(batches, 4) == 1.0
    assert prefix_mean(batches, 8) == 2.0  # (4*1 + 4*3) / 8
    assert prefix_mean(batches, 100) == (4 * 1.0 + 4 * 3.0 + 2 * 10.0) / 10


@pytest.mark.keras
@pytest.mark.parametrize("masked", [False, True])
def test_weight_normalized_with_per_step_weights_is_keras_mean_with_sample_weight(masked):
    """Per-element losses (B, T, 1) with per-step weights (B, T): Keras squeezes the losses' trailing 1 to
    the weights' rank; sum(w*l*m)/sum(w*m) is what reduction="mean_with_sample_weight" gives on the same
    tensors (the mask applied to the weights, as Keras applies a Keras mask)."""
    import keras

    from losscheck.reference.weighting import weight_normalized

    rng = np.random.default_rng(4)
    y = rng.integers(0, 2, size=(4, 5, 1))
    pred = np.asarray(keras.ops.softmax(rng.normal(size=(4, 5, 1, 2)).astype("float32")), np.float64)
    w = rng.uniform(0.2, 2.0, size=(4, 5))
    mask = (rng.uniform(size=(4, 5, 1)) > 0.3) if masked else None
    loss = keras.losses.SparseCategoricalCrossentropy(reduction="mean_with_sample_weight")
    keras_w = w * mask[..., 0] if masked else w
    expected = float(loss(y, pred.astype("float32"), sample_weight=keras_w.astype("float32")))
    got = weight_normalized(LossSpec("sparse_categorical_crossentropy"), y, pred, w, mask, None, None)
    assert got == pytest.approx(expected, rel=1e-6)
