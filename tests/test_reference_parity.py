"""Randomized parity: real Keras models over losses x reductions x weights x masks x ranks; losscheck's
numpy `manual` + regularization must equal model.evaluate() (computed here, in the same test) within
1e-5 relative. A small default run; a bigger sweep is marked slow."""

from __future__ import annotations

import math
import os
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, event, example, given, reject, settings
from hypothesis import strategies as st

from tests.test_reference_cases import LOSSES, REDUCTIONS, Case, OutputCase, build, save_inputs

pytestmark = pytest.mark.keras

RTOL = 1e-5


@st.composite
def output_cases(draw, masked: bool, multi: bool):
    kind = draw(st.sampled_from([k for k in sorted(LOSSES) if not (masked and k == "ctc")]))
    spec = LOSSES[kind]
    ranks = spec.get("ranks") or ([3] if masked else [2, 3, 4])
    if masked and kind in ("circle", "ctc", "gce"):
        ranks = spec.get("ranks") or [2]
    rank = draw(st.sampled_from(ranks))
    if kind in ("scce", "cce", "cfce", "kld", "categorical_hinge", "gce", "circle", "ctc"):
        channels = draw(st.integers(2, 4))
    elif kind == "crossentropy":
        channels = draw(st.sampled_from([1, 3]))
    else:
        channels = draw(st.sampled_from([1, 2, 3]))
    reduction = draw(st.sampled_from(REDUCTIONS if not multi else REDUCTIONS[:4]))
    return OutputCase(
        kind=kind,
        form=draw(st.sampled_from(["object", "object", "string", "function"])),
        option_index=draw(st.integers(0, 3)),
        reduction=reduction,
        activation_index=draw(st.integers(0, 2)),
        rank=rank,
        channels=channels,
        target_variant=draw(st.integers(0, 3)),
        scale=draw(st.sampled_from([0.5, 1.0, 30.0])),
    )


@st.composite
def cases(draw):
    mask = draw(st.sampled_from(["none", "none", "masking", "embedding"]))
    multi = draw(st.booleans())
    outputs = [draw(output_cases(mask != "none", multi))]
    if multi:
        outputs.append(draw(output_cases(mask != "none", True)))
    if any(o.rank == 4 for o in outputs) and mask != "none":
        mask = "none"
    none_red = any(o.reduction == "none" for o in outputs)
    return Case(
        seed=draw(st.integers(0, 2**16)),
        outputs=outputs,
        n=draw(st.integers(5, 40)),
        batch_size=draw(st.sampled_from([4, 7, 16, 32])),
        mask=mask,
        weights=draw(st.sampled_from(["none", "sample", "column", "full"])),
        loss_weights=draw(st.none() | st.lists(st.sampled_from([0.5, 1.0, 2.0]), min_size=len(outputs),
                                                max_size=len(outputs))),
        regularizer=(not none_red) and draw(st.booleans()),
        extra_output_without_loss=multi and draw(st.booleans()),
        extras=draw(st.sampled_from([0, 0, 1, 2, 4, 8, 16, 11, 20, 27])),  # 4 + 8: Keras fails
    )


def _losscheck_inference(model_path, data_path, batch_size):
    from losscheck.loading.data import load_data
    from losscheck.loading.model import load_model
    from losscheck.probes.prober import Prober

    loaded = load_model(model_path)
    data = load_data(data_path, [t.name for t in loaded.model.inputs], loaded.output_names)
    try:
        return Prober(loaded, data, batch_size).inference_pass()
    finally:
        data.close()


def check_case(case: Case, tmp_path) -> None:
    import keras

    model, x, ys, sw = build(case)
    y = ys if len(ys) > 1 else ys[0]
    try:
        expected = model.evaluate(x, y, sample_weight=sw, batch_size=case.batch_size, verbose=0,
                                  return_dict=True)["loss"]
    except Exception as exc:  # noqa: BLE001 - a combination Keras itself rejects is not a case
        lines = [ln for ln in str(exc).splitlines() if ln.strip()]
        event(f"Keras rejects: {type(exc).__name__}: {(lines[-1] if lines else '')[:80]}")
        reject()
    folder = Path(tempfile.mkdtemp(dir=tmp_path))
    model_path, data_path = save_inputs(model, x, ys, sw, folder)
    keras.backend.clear_session()
    inf = _losscheck_inference(model_path, data_path, case.batch_size)
    assert inf.manual is not None, f"manual missing: {inf.manual_errors} for {case}"
    total = inf.manual + inf.regularization
    if not math.isfinite(expected):
        assert not math.isfinite(total) or abs(total) > 1e30, case
        return
    assert abs(total - expected) <= RTOL * max(abs(expected), 1e-3), (
        f"manual+reg {total!r} vs evaluate {expected!r} (manual {inf.manual}, reg {inf.regularization}) "
        f"for {case}")
    # evaluate as losscheck measures it is Keras's own number too
    assert abs(inf.evaluate - expected) <= RTOL * max(abs(expected), 1e-3)


@settings(max_examples=10, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                 HealthCheck.filter_too_much])
@given(case=cases())
# mixed_float16 sigmoid output: evaluate's own graph computes the activation fused, in other float16
# roundings than a graph that also returns its pre-activation
@example(case=Case(seed=0, outputs=[OutputCase(kind="bce", form="object", option_index=0,
                                               reduction="sum_over_batch_size", activation_index=0, rank=2,
                                               channels=1, target_variant=0, scale=0.5)],
                   n=5, batch_size=4, mask="none", weights="none", loss_weights=None, regularizer=False,
                   extra_output_without_loss=False, extras=8))
def test_manual_matches_evaluate(case, tmp_path):
    check_case(case, tmp_path)


@pytest.mark.slow
@settings(max_examples=int(os.environ.get("LOSSCHECK_SWEEP_EXAMPLES", "250")), deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                 HealthCheck.filter_too_much])
@given(case=cases())
def test_manual_matches_evaluate_sweep(case, tmp_path):
    check_case(case, tmp_path)


EVERY_LOSS = {
    # (rank of the outputs, form, option index, kernel scale, mask)
    "rank2-objects-saturated": (2, "object", 1, 30.0, "none"),
    "rank3-objects": (3, "object", 2, 1.0, "none"),
    "rank2-strings": (2, "string", 0, 3.0, "none"),
    "rank3-functions-masked": (3, "function", 0, 1.0, "embedding"),
}


def _close(ours: float, theirs: float) -> bool:
    if math.isnan(theirs) or math.isnan(ours):
        return math.isnan(theirs) and math.isnan(ours)
    return abs(ours - theirs) <= RTOL * max(abs(theirs), 1e-3)


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(EVERY_LOSS))
def test_every_loss_in_one_model(name, tmp_path):
    """Every loss of keras.losses at least once per run: one output per loss on one model, each output's
    reference loss against Keras's own per-output log, and the total against evaluate."""
    import keras

    rank, form, option, scale, mask = EVERY_LOSS[name]
    outputs = []
    for kind in sorted(LOSSES):
        ranks = LOSSES[kind].get("ranks") or [2, 3]
        r = rank if rank in ranks else ranks[0]
        if mask != "none" and kind in ("circle", "ctc"):
            continue
        channels = 1 if kind in ("bce", "bfce", "dice", "tversky") and option == 1 else 3
        outputs.append(OutputCase(kind=kind, form=form, option_index=option, reduction="sum_over_batch_size",
                                  activation_index=option, rank=r, channels=channels, target_variant=option,
                                  scale=scale))
    case = Case(seed=11 + option, outputs=outputs, n=13, batch_size=4, mask=mask, weights="column",
                loss_weights=None, regularizer=True, extra_output_without_loss=False)
    model, x, ys, sw = build(case)
    logs = model.evaluate(x, ys, sample_weight=sw, batch_size=case.batch_size, verbose=0, return_dict=True)
    folder = Path(tempfile.mkdtemp(dir=tmp_path))
    model_path, data_path = save_inputs(model, x, ys, sw, folder)
    keras.backend.clear_session()
    inf = _losscheck_inference(model_path, data_path, case.batch_size)
    assert not inf.manual_errors
    bad = {}
    for o, kind in zip(model.output_names, (c.kind for c in outputs), strict=True):
        ours, theirs = inf.output_loss_keras_log[o], logs[f"{o}_loss"]
        if not _close(ours, theirs):
            bad[kind] = (ours, theirs)
    assert not bad
    assert _close(inf.manual + inf.regularization, logs["loss"])


@pytest.mark.parametrize("loss_name, options", [("Huber", {"delta": 0.3}), ("CosineSimilarity", {"axis": 1})])
def test_options_keras_does_not_save(loss_name, options):
    """Huber(delta) and CosineSimilarity(axis) are not serialized by Keras 3.15; the reference still
    follows them on a model compiled in memory."""
    import keras

    from losscheck.loading.compile import LoadedModel
    from losscheck.loading.lossspec import loss_spec
    from losscheck.probes.prober import Prober

    rng = np.random.default_rng(5)
    x = rng.normal(size=(10, 5, 4)).astype("float32")
    y = rng.normal(size=(10, 5, 3)).astype("float32") * 3
    inp = keras.Input((5, 4))
    model = keras.Model(inp, keras.layers.Dense(3, name="out")(inp))
    loss = getattr(keras.losses, loss_name)(**options)
    model.compile("sgd", loss)
    expected = model.evaluate(x, y, batch_size=4, verbose=0)
    assert loss_spec(loss).options == {**loss_spec(getattr(keras.losses, loss_name)()).options, **options}
    loaded = LoadedModel(model, None, ["out"], {"out": loss}, {"out": 1.0}, "memory", False)
    inf = Prober(loaded, _Arrays(x, y), 4).inference_pass()
    assert abs(inf.manual - expected) <= RTOL * abs(expected)


class _Arrays:
    """The two Dataset methods the inference pass uses, over in-memory arrays."""

    def __init__(self, x, y, sw=None):
        self.x, self.y, self.sw, self.n = x, y, sw, len(x)

    def slice(self, start, stop):
        return [self.x[start:stop]], [self.y[start:stop]], None if self.sw is None else self.sw[start:stop]

    def batch_bounds(self, batch_size, limit=None):
        for start in range(0, self.n if limit is None else min(limit, self.n), batch_size):
            yield start, min(start + batch_size, self.n)


def test_seeded_values_are_reproducible():
    """The case builder is deterministic (so a failing case can be replayed from its repr)."""
    from tests.test_reference_cases import _target

    a = _target("scce", 1, (4, 3), np.random.default_rng(3))
    b = _target("scce", 1, (4, 3), np.random.default_rng(3))
    assert np.array_equal(a, b)


def _in_memory(model, x, ys, sw=None, batch_size=8):
    """losscheck's inference pass on a model compiled in memory (losses resolved as the loader does)."""
    from losscheck.loading.compile import LoadedModel
    from losscheck.loading.losses import resolve_loss
    from losscheck.probes.prober import Prober

    names = list(model.output_names)
    user = model.loss if isinstance(model.loss, (list, tuple)) else [model.loss]
    losses = {o: (None if lo is None else resolve_loss(lo, {})) for o, lo in zip(names, user, strict=True)}
    loaded = LoadedModel(model, None, names, losses, dict.fromkeys(names, 1.0), "memory", False)
    return Prober(loaded, _MultiArrays(x, ys, sw), batch_size).inference_pass()


class _MultiArrays(_Arrays):
    def slice(self, start, stop):
        return ([self.x[start:stop]], [y[start:stop] for y in self.y],
                None if self.sw is None else self.sw[start:stop])


def test_custom_losses_values_from_their_call():
    """Custom function and Loss-subclass losses: values from their own call(), Keras's wrapping by the
    reference: rank matching, weights, their reduction, a scalar-returning fn, a mask they set."""
    import keras
    from keras import ops

    def bce_of_probs(y_true, y_pred):  # gets the logits shortcut inside TensorFlow
        return ops.mean(ops.binary_crossentropy(y_true, y_pred), axis=-1)

    def batch_sum(y_true, y_pred):  # a scalar per batch: reported as it is (times the mean weight)
        return ops.sum(ops.abs(y_true - y_pred))

    class SumAbs(keras.losses.Loss):
        def call(self, y_true, y_pred):
            return ops.sum(ops.abs(y_true - y_pred), axis=-1)

    class MaskedAbove(keras.losses.Loss):  # sets its own mask, like SCCE(ignore_class)
        def call(self, y_true, y_pred):
            v = ops.mean(ops.square(y_true - y_pred), axis=-1)
            keras.src.backend.set_keras_mask(v, v < 2.0)
            return v

    rng = np.random.default_rng(4)
    x = rng.normal(size=(21, 4)).astype("float32")
    init = keras.initializers.RandomNormal(stddev=30.0)
    inp = keras.Input((4,))
    outs = [keras.layers.Dense(2, activation="sigmoid", kernel_initializer=init, name="a")(inp),
            keras.layers.Dense(3, name="b")(inp), keras.layers.Dense(3, name="c")(inp),
            keras.layers.Dense(3, name="d")(inp)]
    ys = [rng.integers(0, 2, size=(21, 2)).astype("float32")] + [rng.normal(size=(21, 3)).astype("float32")] * 3
    model = keras.Model(inp, outs)
    model.compile("sgd", [bce_of_probs, batch_sum, SumAbs(reduction="sum"), MaskedAbove()])
    sw = rng.uniform(0, 2, size=(21,)).astype("float32")
    logs = model.evaluate(x, ys, sample_weight=sw, batch_size=8, verbose=0, return_dict=True)
    inf = _in_memory(model, x, ys, sw)
    assert inf.manual is not None
    assert _close(inf.manual, logs["loss"])
    for o in "abcd":
        assert _close(inf.output_loss_keras_log[o], logs[f"{o}_loss"]), o


def test_graph_softmax_op_without_cached_logits():
    """A raw tf.nn.softmax (no _keras_logits): in graph mode _get_logits still finds the Softmax op and
    crossentropy uses its input; binary crossentropy looks for a Sigmoid op, so it clips."""
    import keras
    import tensorflow as tf

    class RawSoftmax(keras.layers.Layer):
        def call(self, x):
            return tf.nn.softmax(x)

    rng = np.random.default_rng(6)
    x = rng.normal(size=(18, 4)).astype("float32")
    inp = keras.Input((4,))
    z = keras.layers.Dense(3, kernel_initializer=keras.initializers.RandomNormal(stddev=40.0))(inp)
    p1 = RawSoftmax(name="cce")(z)
    p2 = RawSoftmax(name="bce")(z)
    model = keras.Model(inp, [p1, p2])
    ys = [np.eye(3, dtype="float32")[rng.integers(0, 3, size=18)]] * 2
    model.compile("sgd", ["categorical_crossentropy", "binary_crossentropy"])
    logs = model.evaluate(x, ys, batch_size=8, verbose=0, return_dict=True)
    inf = _in_memory(model, x, ys)
    assert _close(inf.manual, logs["loss"])
    assert _close(inf.output_loss_keras_log["cce"], logs["cce_loss"])
    assert _close(inf.output_loss_keras_log["bce"], logs["bce_loss"])
    facts = inf.semantic["facts"]
    assert facts["cce"].logits_used and not facts["bce"].logits_used


@pytest.mark.slow
@settings(max_examples=int(os.environ.get("LOSSCHECK_CLI_SWEEP_EXAMPLES", "40")), deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                 HealthCheck.filter_too_much])
@given(case=cases())
def test_cli_compare_sweep(case, tmp_path):
    """The same random cases through `losscheck compare --format json` (batch size 32, as evaluate's
    default): figures.manual + figures.regularization equals evaluate, and nothing is unexplained."""
    import keras

    from tests.conftest import run_cli

    model, x, ys, sw = build(case)
    y = ys if len(ys) > 1 else ys[0]
    try:
        expected = model.evaluate(x, y, sample_weight=sw, verbose=0, return_dict=True)["loss"]
    except Exception:  # noqa: BLE001 - Keras rejects the combination: not a case
        reject()
    folder = Path(tempfile.mkdtemp(dir=tmp_path))
    model_path, data_path = save_inputs(model, x, ys, sw, folder)
    keras.backend.clear_session()
    res = run_cli("compare", model_path, data_path, "--format", "json")
    assert res.code in (0, 1), res.stderr[-2000:]
    out = res.json
    fig = {k: v["value"] for k, v in out["figures"].items()}
    assert "manual" in fig, out.get("sections", {})
    if math.isfinite(expected):
        assert abs(fig["manual"] + fig["regularization"] - expected) <= 1e-5 * max(abs(expected), 1e-3), case
        assert "unexplained" not in {f["code"] for f in out["findings"] if f.get("between") == ["evaluate", "manual"]}


@pytest.mark.parametrize("y_shape, p_shape, kind", [
    ((8,), (8, 1), "binary_crossentropy"),
    ((8, 1), (8, 1), "binary_crossentropy"),
    ((8,), (8, 3), "sparse_categorical_crossentropy"),
    ((8, 1), (8, 3), "sparse_categorical_crossentropy"),
    ((8, 5), (8, 5, 3), "sparse_categorical_crossentropy"),
    ((8, 3), (8, 3), "categorical_crossentropy"),
])
def test_crossentropy_string_resolves_like_compile(y_shape, p_shape, kind):
    """compile(loss="crossentropy") picks the loss from the shapes; so does losscheck (checked against the
    loss Keras itself built in the same test)."""
    import keras

    from losscheck.loading.lossspec import auto_crossentropy_kind

    inp = keras.Input(p_shape[1:])
    model = keras.Model(inp, keras.layers.Identity()(inp))
    model.compile("sgd", "crossentropy")
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, size=y_shape).astype("float32")
    model.evaluate(rng.uniform(0.1, 0.9, size=p_shape).astype("float32"), y, verbose=0)
    keras_fn = model._compile_loss._flat_losses[0].loss.fn.__name__
    assert auto_crossentropy_kind(y_shape, p_shape) == keras_fn == kind
