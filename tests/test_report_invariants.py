"""Numbers that must agree, on every fixture and option combination: the gap decomposition's rows add
up to their parent, every finding whose magnitude is a gap between two named figures equals their
difference, every `between` names figures the report shows, and every finding carries its code's
magnitude_kind. A representative subset runs by default; the full sweep is marked slow."""

from __future__ import annotations

import numpy as np
import pytest

from losscheck.core.codes import CODES
from tests.conftest import FIXTURES, fixture_files, load_npz, run_cli

pytestmark = pytest.mark.keras

CUSTOM_OBJECTS = {"story5_concat": FIXTURES / "story5_concat" / "losses.py",
                  **{name: FIXTURES / name / "layers.py"
                     for name in ("transformer_block", "custom_bn_block", "subclassed_bn_model", "running_center")}}
#: fixtures whose model takes batches of one size only (a stateful RNN): no other batch size or subset
FIXED_BATCH = {"stateful_lstm"}


def fixtures_with_data() -> list[str]:
    return sorted(d.name for d in FIXTURES.iterdir()
                  if d.is_dir() and (d / "data.npz").exists() and any(p.name.startswith("model.") for p in d.iterdir()))


def option_sets(name: str) -> list[tuple[str, ...]]:
    """The combinations that apply to a fixture: none, a probe subset that is not a whole number of
    batches, another batch size, and --class-weight where the labels are classes of one output and
    the data has no sample weights (Keras refuses both together)."""
    if name in FIXED_BATCH:
        return [()]
    arrays = load_npz(fixture_files(name)[1])
    sets: list[tuple[str, ...]] = [(), ("--probe-samples", "19"), ("--batch-size", "24")]
    ys = [k for k in arrays if k == "y" or k.startswith("y_")]
    if len(ys) == 1 and "sample_weight" not in arrays:
        y = np.asarray(arrays[ys[0]])
        labels = np.argmax(y, -1) if y.ndim > 1 and y.shape[-1] > 1 else y.reshape(len(y), -1)[:, 0]
        # Keras's class_weight takes targets of rank 1 or 2 only (one label per sample)
        if y.ndim <= 2 and np.all(np.isfinite(labels)) and np.all(np.equal(np.mod(labels, 1), 0)) \
                and y.shape[:1] == labels.shape:
            classes = sorted({int(c) for c in labels})
            if 1 < len(classes) <= 20:
                cw = "{" + ", ".join(f'"{c}": {1 + i % 3}' for i, c in enumerate(classes)) + "}"
                sets.append(("--class-weight", cw))
                sets.append(("--class-weight", cw, "--probe-samples", "19"))
    return sets


def compare(name: str, options: tuple[str, ...]) -> dict:
    model, data = fixture_files(name)
    extra = ("--custom-objects", str(CUSTOM_OBJECTS[name])) if name in CUSTOM_OBJECTS else ()
    res = run_cli("compare", model, data, *extra, *options, "--format", "json", "--fail-on", "never")
    assert res.code == 0, res.stderr
    return res.json


def close(a: float, b: float) -> bool:
    """Equal within float rounding of the figures involved."""
    return abs(a - b) <= 1e-9 * max(abs(a), abs(b), 1.0)


def check_invariants(doc: dict) -> None:
    figures = {k: v["value"] for k, v in doc["figures"].items()}
    rows = doc.get("decomposition") or []
    names = [r["name"] for r in rows]
    assert len(names) == len(set(names)), names
    by_name = {r["name"]: r for r in rows}
    for row in rows:
        children = [r for r in rows if r["parent"] == row["name"]]
        if children:
            assert close(sum(r["value"] for r in children), row["value"]), (row, children)
        if row["parent"] is not None:
            assert row["parent"] in by_name and by_name[row["parent"]]["depth"] == row["depth"] - 1
        if row["between"]:
            a, b = row["between"]
            assert a in figures and b in figures, row
            assert close(figures[a] - figures[b], row["value"]), row
            assert f"{a} - {b}" in row["label"]
    if all(figures.get(k) is not None for k in ("fit_epoch", "train_mode", "evaluate")):
        # the weight-update row is never dropped when both figures exist
        assert "weight update" in by_name
    for f in doc["findings"]:
        assert f.get("magnitude_kind") == (None if f["magnitude"] is None else CODES[f["code"]].magnitude_kind), f
        if f["between"]:
            a, b = f["between"]
            assert a in figures and b in figures, f  # never a figure the report does not show
            if f["magnitude_kind"] == "gap" and f["magnitude"] is not None:
                assert figures[a] is not None and figures[b] is not None, f
                assert close(figures[a] - figures[b], f["magnitude"]), f
    for key, fig in doc["figures"].items():
        if "samples" in fig:
            assert "evaluate_probe_subset" in figures and fig["samples"] < doc["data"]["samples"], key


DEFAULT = [("bn_classifier", ("--class-weight", '{"0": 1, "1": 3}', "--probe-samples", "19")),
           ("frozen_bn_dropout", ()),
           ("regularized", ("--batch-size", "24"))]


@pytest.mark.parametrize("name, options", DEFAULT)
def test_invariants_representative(name, options):
    check_invariants(compare(name, options))


@pytest.mark.slow
@pytest.mark.parametrize("name", fixtures_with_data())
def test_invariants_every_fixture_and_option(name):
    for options in option_sets(name):
        check_invariants(compare(name, options))


def test_class_weight_enters_only_fit_and_its_train_mode_figure():
    """--class-weight changes fit_epoch and adds train_mode_class_weighted; train_mode, evaluate and the
    family figures are the unweighted ones; the rows chain fit -> class-weighted train mode -> train
    mode -> evaluate."""
    plain = compare("bn_classifier", ())
    weighted = compare("bn_classifier", ("--class-weight", '{"0": 1, "1": 3}'))
    p = {k: v["value"] for k, v in plain["figures"].items()}
    w = {k: v["value"] for k, v in weighted["figures"].items()}
    for key in ("train_mode", "train_mode_batchnorm_only", "evaluate", "manual"):
        assert w[key] == pytest.approx(p[key], rel=1e-9), key
    assert "train_mode_class_weighted" not in p and w["train_mode_class_weighted"] != pytest.approx(w["train_mode"])
    rows = {r["name"]: r for r in weighted["decomposition"]}
    assert rows["weight update"]["between"] == ["fit_epoch", "train_mode_class_weighted"]
    assert rows["class weight"]["between"] == ["train_mode_class_weighted", "train_mode"]
    assert rows["training-mode layers"]["between"] == ["train_mode", "evaluate"]
    found = {f["code"]: f for f in weighted["findings"]}
    assert found["batchnorm-batch-stats"]["between"] == ["train_mode_batchnorm_only", "evaluate"]
    assert found["class-weight"]["between"] == ["train_mode_class_weighted", "train_mode"]
    check_invariants(weighted)


def test_probe_samples_exact_and_compared_with_the_subset_evaluate():
    """--probe-samples 16 with batch 32 measures on exactly 16 samples, and evaluate on those 16 is
    what Keras's evaluate reports on them."""
    import keras

    model_path, data_path = fixture_files("bn_classifier")
    doc = compare("bn_classifier", ("--probe-samples", "16"))
    figs = doc["figures"]
    assert figs["train_mode"]["samples"] == 16 and figs["evaluate_probe_subset"]["samples"] == 16
    arrays = load_npz(data_path)
    model = keras.saving.load_model(model_path)
    sub = model.evaluate(arrays["x"][:16], arrays["y"][:16], batch_size=32, verbose=0)
    assert figs["evaluate_probe_subset"]["value"] == pytest.approx(sub, rel=1e-5)
    # what a fit step measures first on those 16 samples: model(x, training=True) before any update
    probs = model(arrays["x"][:16], training=True)
    first = float(keras.losses.SparseCategoricalCrossentropy()(arrays["y"][:16], probs))
    assert figs["train_mode"]["value"] == pytest.approx(first, rel=1e-5)
    rows = {r["name"]: r for r in doc["decomposition"]}
    assert rows["training-mode layers"]["between"] == ["train_mode", "evaluate_probe_subset"]
    assert rows["weight update"]["between"] is None  # the remainder: an estimate on a subset
    update = next(f for f in doc["findings"] if f["code"] == "weight-update")
    assert update["magnitude"] == pytest.approx(rows["weight update"]["value"], rel=1e-12)
    check_invariants(doc)


def test_from_logits_mismatch_is_one_finding_with_the_numpy_number():
    """softmax output + CategoricalCrossentropy(from_logits=True): Keras (TF) uses the cached logits, so
    evaluate equals the crossentropy of the probabilities; numpy on predict() taking them as logits, as
    the loss asks, gives more. One finding says so, with that difference; no logits-shortcut."""
    import keras

    model_path, data_path = fixture_files("softmax_from_logits")
    doc = compare("softmax_from_logits", ())
    arrays = load_npz(data_path)
    model = keras.saving.load_model(model_path)
    x, y = arrays["x"], np.asarray(arrays["y"], np.float64)
    evaluate = model.evaluate(x, arrays["y"], batch_size=32, verbose=0)
    p = np.asarray(model.predict(x, batch_size=32, verbose=0), np.float64)
    as_probabilities = float(np.mean(-np.sum(y * np.log(p), axis=-1)))
    z = p - p.max(axis=-1, keepdims=True)
    as_logits = float(np.mean(-np.sum(y * (z - np.log(np.sum(np.exp(z), axis=-1, keepdims=True))), axis=-1)))
    assert evaluate == pytest.approx(as_probabilities, rel=1e-4)
    codes = [f["code"] for f in doc["findings"]]
    assert codes.count("from-logits-mismatch") == 1 and "logits-shortcut" not in codes
    assert "probability-clipping" not in codes
    f = next(f for f in doc["findings"] if f["code"] == "from-logits-mismatch")
    assert f["magnitude"] == pytest.approx(as_logits - evaluate, rel=1e-3)
    assert f["magnitude_kind"] == "gap"
    assert "clipped" not in f["message"] and "saturat" not in f["advice"]


def test_frozen_batchnorm_note():
    doc = compare("frozen_bn_dropout", ())
    notes = [n for n in doc["notes"] if "b_bn" in n]
    assert len(notes) == 1 and "frozen" in notes[0] and "inference mode" in notes[0]
    assert "no cause" in notes[0]
    assert not any("b_bn" in f["message"] for f in doc["findings"])


def test_frozen_batchnorm_note_for_a_tfkeras_file():
    """A tf.keras 2.x .h5 file with a frozen nested base: the note also says what tf.keras 2.x did."""
    d = FIXTURES / "inputs_tfkeras"
    res = run_cli("compare", d / "nested.h5", d / "nested.npz", "--format", "json", "--fail-on", "never")
    assert res.code == 0, res.stderr
    doc = res.json
    notes = [n for n in doc["notes"] if "b_bn" in n]
    assert len(notes) == 1 and "inference mode" in notes[0] and "tf.keras 2.x" in notes[0]
    check_invariants(doc)
