"""`losscheck breakdown` through the CLI on real Keras models, checked against numbers Keras itself
produces in the same test (model.evaluate on the whole data, on single samples, per channel)."""

from __future__ import annotations

import numpy as np
import pytest

from tests.conftest import fixture_files, load_npz, rel, run_cli
from tests.test_report_schema import validate

pytestmark = pytest.mark.keras

_cache: dict[tuple, object] = {}


def breakdown(name: str, *args: str, data=None):
    model, default_data = fixture_files(name)
    key = (name, str(data), args)
    if key not in _cache:
        res = run_cli("breakdown", model, data or default_data, "--format", "json", *args)
        assert res.code in (0, 1), res.stderr
        validate(res.json)  # the contract's JSON schema
        _cache[key] = res.json
    return _cache[key]


def keras_model(name: str):
    import keras

    keras.utils.set_random_seed(0)
    return keras.saving.load_model(fixture_files(name)[0])


def evaluate(model, x, y, sample_weight=None, batch_size=32) -> dict:
    return model.evaluate(x, y, batch_size=batch_size, sample_weight=sample_weight, verbose=0, return_dict=True)


def dilution_subjects(out) -> set[str]:
    return {f["subject"] for f in out["findings"] if f["code"] == "class-dilution"}


def assert_rows_add_up(out, key="per_class"):
    rows = out[key]
    total = out["total"]
    assert rel(sum(r["contribution"] for r in rows), total) < 1e-5
    assert abs(sum(r["share"] for r in rows) - 1.0) < 1e-5


# -- story 3: segmentation, 5 sigmoid channels, one rare and missed --------------------------------
def test_segmentation_channels_add_up_to_evaluate():
    out = breakdown("seg_story3", "--per-class")
    model = keras_model("seg_story3")
    d = load_npz(fixture_files("seg_story3")[1])
    ev = evaluate(model, d["x"], d["y"])["loss"]
    rows = out["per_class"]
    assert [r["class"] for r in rows] == [0, 1, 2, 3, 4]
    assert rel(out["total"], ev) < 1e-5
    assert_rows_add_up(out)
    # the identity stated in the report: the output loss is the mean of the channel losses
    assert rel(np.mean([r["loss"] for r in rows]), ev) < 1e-5
    # each channel's loss is Keras's own BCE on that channel alone (no weights: a plain mean)
    import keras

    p = model.predict(d["x"], batch_size=32, verbose=0)
    for r in rows:
        c = r["class"]
        expected = float(np.mean(keras.losses.binary_crossentropy(d["y"][..., c:c + 1], p[..., c:c + 1])))
        assert rel(r["loss"], expected) < 1e-4
        truth, hit = d["y"][..., c] > 0.5, p[..., c] > 0.5
        assert r["positives"] == int(truth.sum())
        iou = (truth & hit).sum() / max((truth | hit).sum(), 1)
        assert abs(r["iou"] - iou) < 1e-9


def test_segmentation_flags_exactly_the_rare_missed_channel():
    out = breakdown("seg_story3", "--per-class")
    assert dilution_subjects(out) == {"4"}
    f = next(f for f in out["findings"] if f["code"] == "class-dilution")
    assert f["severity"] == "warning"
    rows = {r["class"]: r for r in out["per_class"]}
    assert rows[4]["iou"] < 0.5 and rows[4]["prevalence"] < 0.05
    assert all(rows[c]["iou"] > 0.9 for c in range(4))


def test_segmentation_with_sample_weights_still_adds_up(tmp_path):
    d = load_npz(fixture_files("seg_story3")[1])
    # per-pixel weights (Keras 3 does not expand (n,) weights against (n, H, W) loss values)
    sw = np.random.default_rng(0).uniform(0.0, 3.0, size=d["y"].shape[:3]).astype("float32")
    path = tmp_path / "weighted.npz"
    np.savez(path, x=d["x"], y=d["y"], sample_weight=sw)
    out = breakdown("seg_story3", "--per-class", data=path)
    model = keras_model("seg_story3")
    ev = evaluate(model, d["x"], d["y"], sample_weight=sw)["loss"]
    assert rel(out["total"], ev) < 1e-5
    assert_rows_add_up(out)
    assert rel(np.mean([r["loss"] for r in out["per_class"]]), ev) < 1e-5


# -- softmax classifiers with a rare, always-wrong class ------------------------------------------
@pytest.mark.parametrize("name, rare", [("softmax_rare", 3), ("softmax_rare_onehot", 1)])
def test_softmax_classes_add_up_and_flag_the_rare_class(name, rare):
    out = breakdown(name, "--per-class")
    model = keras_model(name)
    d = load_npz(fixture_files(name)[1])
    ev = evaluate(model, d["x"], d["y"])["loss"]
    rows = out["per_class"]
    labels = d["y"] if d["y"].ndim == 1 else d["y"].argmax(axis=-1)
    assert {r["class"]: r["count"] for r in rows} == {int(k): int(c) for k, c in
                                                      zip(*np.unique(labels, return_counts=True), strict=True)}
    assert rel(out["total"], ev) < 1e-5
    assert_rows_add_up(out)
    # count-weighted mean of the class means
    n = sum(r["count"] for r in rows)
    assert rel(sum(r["count"] * r["loss"] for r in rows) / n, ev) < 1e-5
    # a class's loss is Keras's evaluate on that class's samples alone
    sel = labels == rare
    class_ev = evaluate(model, d["x"][sel], d["y"][sel])["loss"]
    assert rel(next(r for r in rows if r["class"] == rare)["loss"], class_ev) < 1e-5
    assert dilution_subjects(out) == {str(rare)}
    pred = model.predict(d["x"], verbose=0).argmax(axis=-1)
    for r in rows:
        assert abs(r["recall"] - float(np.mean(pred[labels == r["class"]] == r["class"]))) < 1e-12


# -- per output: two outputs, partial last batch ---------------------------------------------------
def _two_outputs():
    model = keras_model("two_outputs_partial")
    d = load_npz(fixture_files("two_outputs_partial")[1])
    return model, d["x"], [d["y_reg"], d["y_cls"]]


def test_per_output_total_is_evaluate_and_keras_logs_match():
    out = breakdown("two_outputs_partial", "--per-output")
    model, x, y = _two_outputs()
    ev = evaluate(model, x, y)  # batch 32: the last batch has 22 samples
    whole = evaluate(model, x, y, batch_size=len(x))  # one batch: Keras's own exact per-output means
    rows = {r["output"]: r for r in out["per_output"]}
    assert set(rows) == {"reg", "cls"}
    assert rel(out["total"], ev["loss"]) < 1e-5
    reg = out["regularization"]
    assert rel(sum(r["weighted"] for r in rows.values()) + reg["total"], out["total"]) < 1e-9
    assert rel(sum(r["penalty"] for r in reg["layers"]), reg["total"]) < 1e-5
    assert {r["layer"] for r in reg["layers"]} == {"trunk", "mid"}
    for o, r in rows.items():
        assert rel(r["keras_log"], ev[f"{o}_loss"]) < 1e-5
        assert rel(r["loss"], whole[f"{o}_loss"]) < 1e-5
        assert r["weighted"] == pytest.approx(r["weight"] * r["loss"], rel=1e-12)
    assert rows["reg"]["weight"] == 0.5 and rows["cls"]["weight"] == 2.0
    # the difference is real: Keras's unweighted batch mean is not the exact mean here
    assert rel(rows["reg"]["keras_log"], rows["reg"]["loss"]) > 1e-4
    partial = {f["subject"] for f in out["findings"] if f["code"] == "partial-batch"}
    assert partial == {o for o, r in rows.items() if rel(r["keras_log"], r["loss"]) > 1e-4}
    assert "reg" in partial


def test_per_output_no_partial_batch_when_batches_are_equal():
    out = breakdown("two_outputs_partial", "--per-output", "--batch-size", "30")
    model, x, y = _two_outputs()
    ev = evaluate(model, x, y, batch_size=30)
    assert rel(out["total"], ev["loss"]) < 1e-5
    for r in out["per_output"]:
        assert rel(r["keras_log"], ev[f"{r['output']}_loss"]) < 1e-5
    assert "partial-batch" not in {f["code"] for f in out["findings"]}


# -- per sample ------------------------------------------------------------------------------------
def test_per_sample_worst_are_keras_single_sample_losses():
    out = breakdown("seg_story3", "--per-sample", "--top", "4")
    model = keras_model("seg_story3")
    d = load_npz(fixture_files("seg_story3")[1])
    ev = evaluate(model, d["x"], d["y"])["loss"]
    rows = out["per_sample"]
    assert len(rows) == 4
    assert [r["loss"] for r in rows] == sorted((r["loss"] for r in rows), reverse=True)
    dist = out["distribution"]
    assert dist["count"] == len(d["x"]) and sum(dist["histogram"]["counts"]) == len(d["x"])
    assert rel(dist["mean"], ev) < 1e-5 and rel(out["total"], ev) < 1e-5
    import keras

    p = model.predict(d["x"], verbose=0)
    per_sample = np.asarray(keras.losses.binary_crossentropy(d["y"], p)).reshape(len(p), -1).mean(axis=1)
    assert [r["index"] for r in rows] == list(np.argsort(-per_sample, kind="stable")[:4])
    for r in rows:  # a sample's loss is what Keras's evaluate reports on that sample alone
        single = evaluate(model, d["x"][r["index"]:r["index"] + 1], d["y"][r["index"]:r["index"] + 1])["loss"]
        assert rel(r["loss"], single) < 1e-5
        assert r["target"] and r["prediction"]
    assert dist["max"] == pytest.approx(rows[0]["loss"])


def test_per_sample_classifier_summaries():
    out = breakdown("softmax_rare", "--per-sample", "--top", "3")
    d = load_npz(fixture_files("softmax_rare")[1])
    for r in out["per_sample"]:
        assert r["target"] == f"class {int(d['y'][r['index']])}"
        assert r["prediction"].startswith("class ")


# -- masks: a sequence model with Embedding(mask_zero=True), built here --------------------------
def test_masked_sequence_per_class_and_per_sample_add_up(tmp_path):
    import keras

    keras.utils.set_random_seed(3)
    rng = np.random.default_rng(3)
    n, t = 45, 7
    x = rng.integers(1, 20, size=(n, t))
    lengths = rng.integers(2, t + 1, size=n)
    x[np.arange(t)[None, :] >= lengths[:, None]] = 0  # padding, masked
    y = rng.integers(0, 3, size=(n, t)).astype("int32")
    inp = keras.Input((t,), dtype="int32", name="tokens")
    h = keras.layers.Embedding(20, 8, mask_zero=True, name="emb")(inp)
    out = keras.layers.Dense(3, activation="softmax", name="tags")(h)
    model = keras.Model(inp, out)
    model.compile("adam", "sparse_categorical_crossentropy")
    model.save(tmp_path / "model.keras")
    np.savez(tmp_path / "data.npz", x=x, y=y)
    ev = evaluate(model, x, y)["loss"]
    res = run_cli("breakdown", tmp_path / "model.keras", tmp_path / "data.npz", "--per-class", "--format", "json")
    assert res.code in (0, 1), res.stderr
    per_class = res.json
    assert rel(per_class["total"], ev) < 1e-5
    assert_rows_add_up(per_class)
    valid = x != 0
    assert sum(r["count"] for r in per_class["per_class"]) == int(valid.sum())
    res = run_cli("breakdown", tmp_path / "model.keras", tmp_path / "data.npz", "--per-sample", "--format", "json")
    assert rel(res.json["distribution"]["mean"], ev) < 1e-5


# -- human formats ---------------------------------------------------------------------------------
@pytest.mark.parametrize("mode", ["--per-class", "--per-output", "--per-sample"])
def test_table_and_markdown_render(mode):
    name = "two_outputs_partial" if mode == "--per-output" else "seg_story3"
    model, data = fixture_files(name)
    table = run_cli("breakdown", model, data, mode, "--no-color")
    md = run_cli("breakdown", model, data, mode, "--format", "markdown")
    assert table.code == 0 and md.code == 0, table.stderr + md.stderr
    assert "█" in table.stdout and "█" in md.stdout
    assert "How the rows add up" in table.stdout and "How the rows add up" in md.stdout
    if mode == "--per-class":
        assert "class-dilution" in table.stdout and "class-dilution" in md.stdout
    if mode == "--per-output":
        assert "partial-batch" in table.stdout and "Keras log" in md.stdout
    if mode == "--per-sample":
        assert "Distribution of per-sample losses" in table.stdout and "worst samples" in md.stdout


def test_per_output_run_eagerly_logs_the_exact_mean(tmp_path):
    """A model compiled with run_eagerly=True logs batch-size-weighted per-output means: no partial-batch."""
    import keras

    model, x, y = _two_outputs()
    model.compile(optimizer="adam", loss={"reg": "mse", "cls": "binary_crossentropy"},
                  loss_weights={"reg": 0.5, "cls": 2.0}, run_eagerly=True)
    model.save(tmp_path / "model.keras")
    np.savez(tmp_path / "data.npz", x=x, y_reg=y[0], y_cls=y[1])
    res = run_cli("breakdown", tmp_path / "model.keras", tmp_path / "data.npz", "--per-output", "--format", "json")
    assert res.code in (0, 1), res.stderr
    ev = evaluate(keras.saving.load_model(tmp_path / "model.keras"), x, y)
    for r in res.json["per_output"]:
        assert rel(r["keras_log"], ev[f"{r['output']}_loss"]) < 1e-5
        assert rel(r["keras_log"], r["loss"]) < 1e-9
    assert "partial-batch" not in {f["code"] for f in res.json["findings"]}
