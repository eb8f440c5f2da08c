"""Data as Keras accepts it. DATA `FILE.py:FUNC` returning a Python generator (yielding (x, y) or
(x, y, sample_weight), x an array or a dict by input name), as `model.fit` takes one: compare and
breakdown give Keras's own `model.evaluate(generator)` on the same batches; a generator that loops
forever, never ends or fails is one exit-2 line. A data file holding arrays beside the ones the model
reads (`x_test`, `y_test`, `class_names`) is read with a note naming them (escaped); missing keys stay
exit 2. The model is a small version of keras-io's "Imbalanced classification: credit card fraud
detection" MLP (Dense-Dense-Dropout-Dense sigmoid), built and saved here, seeded."""

from __future__ import annotations

import importlib.util
import textwrap

import numpy as np
import pytest

from tests.conftest import rel, run_cli
from tests.test_loading_models import assert_refused
from tests.test_security_escape import assert_inert_markdown, assert_no_control

pytestmark = pytest.mark.keras

N, BATCH, FEATURES = 90, 25, 8  # four batches: 25, 25, 25, 15


@pytest.fixture(scope="module")
def case(tmp_path_factory):
    """(folder, the saved model, the arrays, the data-function file and that file imported)."""
    import keras

    folder = tmp_path_factory.mktemp("keras_accepts")
    rng = np.random.default_rng(7)
    x = rng.normal(size=(N, FEATURES)).astype("float32")
    y = (x[:, :1] - 0.5 * x[:, 1:2] + 0.4 * rng.normal(size=(N, 1)) > 0).astype("float32")
    sw = rng.uniform(0.2, 2.0, size=N).astype("float32")
    keras.utils.set_random_seed(7)
    inp = keras.Input((FEATURES,), name="features")
    h = keras.layers.Dense(16, activation="relu")(inp)
    h = keras.layers.Dense(16, activation="relu")(h)
    h = keras.layers.Dropout(0.3)(h)
    out = keras.layers.Dense(1, activation="sigmoid")(h)
    model = keras.Model(inp, out)
    model.compile(optimizer=keras.optimizers.Adam(1e-2), loss="binary_crossentropy", metrics=["accuracy"])
    model.fit(x, y, batch_size=BATCH, epochs=2, verbose=0)
    model.save(folder / "model.keras")
    np.savez(folder / "arrays.npz", x=x, y=y, sample_weight=sw)
    code = textwrap.dedent(f"""
        import numpy as np
        import tensorflow as tf

        _D = np.load({str(folder / "arrays.npz")!r})
        X, Y, W = _D["x"], _D["y"], _D["sample_weight"]
        BATCH = {BATCH}


        def batches():
            print("generator: starting")  # not into the report on stdout
            for i in range(0, len(X), BATCH):
                yield X[i:i + BATCH], Y[i:i + BATCH]


        def weighted():
            for i in range(0, len(X), BATCH):
                yield X[i:i + BATCH], Y[i:i + BATCH], W[i:i + BATCH]


        def by_name():
            for i in range(0, len(X), BATCH):
                yield {{"features": X[i:i + BATCH]}}, Y[i:i + BATCH]


        def pipeline():
            return tf.data.Dataset.from_tensor_slices((X, Y)).batch(BATCH)


        def endless():
            while True:
                for i in range(0, len(X), BATCH):
                    yield X[i:i + BATCH], Y[i:i + BATCH]


        def noisy_forever():
            rng = np.random.default_rng(0)
            while True:
                yield rng.normal(size=(BATCH, X.shape[1])).astype("float32"), np.ones((BATCH, 1), "float32")


        def failing():
            yield X[:BATCH], Y[:BATCH]
            raise RuntimeError("disk went away")


        def empty():
            return
            yield
    """)
    source = folder / "data_fn.py"
    source.write_text(code)
    spec = importlib.util.spec_from_file_location("keras_accepts_data_fn", source)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return folder, folder / "model.keras", (x, y, sw), source, module


def _keras_evaluate(model_path, data) -> float:
    """Keras's own model.evaluate on `data` (a generator, or (x, y) arrays at batch size 32), the model
    loaded fresh."""
    import keras

    model = keras.models.load_model(model_path)
    if isinstance(data, tuple):
        return float(model.evaluate(*data, batch_size=32, verbose=0, return_dict=True)["loss"])
    return float(model.evaluate(data, verbose=0, return_dict=True)["loss"])


def _figures(res) -> dict[str, float]:
    assert res.code in (0, 1), res.stderr
    return {k: v["value"] for k, v in res.json["figures"].items()}


# ----------------------------------------------------------------------------------------------
# Python generators
# ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("func", ["batches", "weighted", "by_name"])
def test_generator_compare_is_keras_evaluate(case, func):
    _, model, _, source, module = case
    expected = _keras_evaluate(model, getattr(module, func)())
    res = run_cli("compare", model, f"{source}:{func}", "--format", "json")
    figures = _figures(res)
    assert rel(figures["evaluate"], expected) < 1e-4
    assert rel(figures["manual"], expected) < 1e-4
    assert res.json["data"]["samples"] == N and res.json["data"]["batch_size"] == BATCH
    note = next(n for n in res.json["notes"] if "Python generator" in n)
    assert "read once" in note and "4 batches" in note and f"{N} samples" in note
    assert "generator: starting" not in res.stdout


def test_generator_gives_the_figures_of_the_same_batches_as_a_pipeline(case):
    """Every figure, fit_epoch included, is what the same batches give through tf.data."""
    _, model, _, source, _ = case
    by_generator = _figures(run_cli("compare", model, f"{source}:batches", "--format", "json"))
    by_pipeline = _figures(run_cli("compare", model, f"{source}:pipeline", "--format", "json"))
    assert set(by_generator) == set(by_pipeline) and "fit_epoch" in by_generator
    for name, value in by_pipeline.items():
        assert rel(by_generator[name], value) < 1e-5, name


def test_generator_breakdown_is_keras_evaluate(case):
    _, model, _, source, module = case
    expected = _keras_evaluate(model, module.weighted())
    res = run_cli("breakdown", "--per-sample", model, f"{source}:weighted", "--format", "json")
    figures = _figures(res)
    assert rel(figures["evaluate"], expected) < 1e-4
    assert rel(figures["manual"], expected) < 1e-4
    assert any("Python generator" in n for n in res.json["notes"])


def test_generator_object_in_the_python_api(case):
    import losscheck

    _, model, _, _, module = case
    expected = _keras_evaluate(model, module.weighted())
    report = losscheck.compare(model, data=module.weighted())
    assert rel(report.figures["evaluate"].value, expected) < 1e-4
    assert report.to_dict()["data"]["samples"] == N


def test_endless_failing_and_empty_generators_exit_2(case, monkeypatch):
    from losscheck.loading import generators

    _, model, _, source, _ = case
    line = assert_refused(run_cli("compare", model, f"{source}:endless"), "endless", "first 4 batches again",
                          "batch 5", "steps=4", "stop after 4 batches")
    assert "\x1b" not in line
    monkeypatch.setattr(generators, "GENERATOR_BATCHES", 40)
    assert_refused(run_cli("compare", model, f"{source}:noisy_forever"), "noisy_forever",
                   "yielded 41 batches", "without ending", "at most 40 batches", "steps=", "PyDataset")
    assert_refused(run_cli("breakdown", "--per-sample", model, f"{source}:noisy_forever"), "without ending")
    monkeypatch.undo()
    assert_refused(run_cli("compare", model, f"{source}:failing"), "failed at batch 2",
                   "RuntimeError: disk went away")
    assert_refused(run_cli("compare", model, f"{source}:empty"), "yields no batches")
    assert_refused(run_cli("compare", model, f"{source}:by_name", "--class-weight", '{"0": 1, "1": 2}'),
                   "--class-weight is not supported with a Python generator")


# ----------------------------------------------------------------------------------------------
# Data files with arrays the model does not read
# ----------------------------------------------------------------------------------------------
def _write_h5(path, arrays):
    import h5py

    with h5py.File(path, "w") as f:
        for k, v in arrays.items():
            f.create_dataset(k, data=v)
    return path


def test_extra_arrays_are_left_out_with_a_note(case):
    folder, model, (x, y, _), _, _ = case
    expected = _keras_evaluate(model, (x, y))
    extras = {"x_test": x[:10], "y_test": y[:10], "class_names": np.array(["legit", "fraud"])}
    npz = folder / "with_test.npz"
    np.savez(npz, x=x, y=y, **extras)
    h5 = _write_h5(folder / "with_test.h5", {"x": x, "y": y, "x_test": x[:10], "y_test": y[:10]})
    for data, left_out in ((npz, "'class_names', 'x_test', 'y_test'"), (h5, "'x_test', 'y_test'")):
        res = run_cli("compare", model, data, "--format", "json")
        assert rel(_figures(res)["evaluate"], expected) < 1e-4
        assert res.json["data"]["samples"] == N
        note = next(n for n in res.json["notes"] if "left out" in n)
        assert note.startswith(f"{data.name}: read 'x', 'y'; left out") and note.endswith(left_out), note
    with_val = run_cli("compare", model, folder / "arrays.npz", "--val", npz, "--format", "json")
    assert rel(_figures(with_val)["evaluate_val"], expected) < 1e-4
    assert any(n.startswith("with_test.npz: read 'x', 'y'; left out 3") for n in with_val.json["notes"])
    # an object array beside them is never unpickled: it is not read at all
    pickled = folder / "with_objects.npz"
    np.savez(pickled, x=x, y=y, meta=np.array([{"source": "kaggle"}], dtype=object))
    res = run_cli("compare", model, pickled, "--format", "json")
    assert rel(_figures(res)["evaluate"], expected) < 1e-4
    assert any("'meta'" in n for n in res.json["notes"])


def test_missing_keys_stay_exit_2(case):
    folder, model, (x, y, _), _, _ = case
    only_splits = folder / "splits.npz"
    np.savez(only_splits, x_train=x, y_train=y, x_test=x[:10], y_test=y[:10])
    assert_refused(run_cli("compare", model, only_splits), "splits.npz", "no input arrays: expected 'x'",
                   "found 'x_test', 'x_train', 'y_test', 'y_train'")
    no_y = folder / "no_y.npz"
    np.savez(no_y, x=x, x_test=x[:10])
    assert_refused(run_cli("compare", model, no_y), "no target arrays: expected 'y'", "found 'x', 'x_test'")


def test_hostile_extra_array_names_are_escaped_and_cut(case):
    folder, model, (x, y, _), _, _ = case
    hostile = "a_\x1b]0;pwned\x07<img src=x onerror=alert(1)>[link](javascript:alert(1))\u202e"
    many = {f"extra_{i:02d}": y[:2] for i in range(12)}
    data = folder / "hostile.npz"
    np.savez(data, x=x, y=y, **{hostile: y[:3], "b" * 500: y[:3]}, **many)
    table = run_cli("compare", model, data, "--format", "table")
    assert table.code in (0, 1), table.stderr
    assert_no_control(table.stdout + table.stderr)
    assert "and 6 more" in table.stdout and "b" * 500 not in table.stdout
    md = run_cli("compare", model, data, "--format", "markdown")
    assert md.code in (0, 1), md.stderr
    assert_inert_markdown(md.stdout)
    note = next(n for n in run_cli("compare", model, data, "--format", "json").json["notes"] if "left out" in n)
    assert "left out 14 other entries" in note and "\x1b" not in note and "\\x1b" in note
