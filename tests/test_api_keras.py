"""The Python API and the callback against Keras in the same test: compare on an in-memory model with
arrays, with a tf.data pipeline, with a PyDataset and through the CLI (file model, npz / FILE.py:FUNC /
TFRecord folder) give the same figures; evaluate equals model.evaluate; the model (and the process's
random state) is left exactly as it was; the callback's fit_logged is fit's logged loss, its evaluate
is model.evaluate at that point, and training with it gives the same weights and history."""

from __future__ import annotations

import random
import textwrap

import numpy as np
import pytest

from tests.conftest import assert_same_training, rel, run_cli
from tests.test_report_schema import validate

pytestmark = pytest.mark.keras

N, BATCH = 96, 32


def _data(seed: int = 0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(N, 6)).astype("float32")
    y = (x[:, :1] + 0.3 * rng.normal(size=(N, 1)) > 0).astype("float32")
    return x, y


def _model(seed: int = 1, dropout: bool = True):
    """A small classifier with a regularizer, BatchNormalization and (random) Dropout. Without Dropout it is
    deterministic, so an in-memory model and its saved file give the same figures: a file's Dropout
    seed state is not saved (Keras draws a fresh one at load), an in-memory model's continues."""
    import keras

    keras.utils.set_random_seed(seed)
    model = keras.Sequential([
        keras.Input((6,)),
        keras.layers.Dense(12, activation="relu", kernel_regularizer=keras.regularizers.L2(1e-3)),
        *([keras.layers.Dropout(0.25)] if dropout else []),
        keras.layers.BatchNormalization(),
        keras.layers.Dense(1, activation="sigmoid"),
    ])
    model.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy"])
    return model


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A trained model (optimizer built, metrics built), its data, and the same model saved."""
    x, y = _data()
    model = _model(dropout=False)
    model.fit(x, y, batch_size=BATCH, epochs=2, verbose=0)
    folder = tmp_path_factory.mktemp("api")
    model.save(folder / "model.keras")
    np.savez(folder / "data.npz", x=x, y=y)
    return model, x, y, folder


def _figures(report) -> dict[str, float]:
    return {k: f.value for k, f in report.figures.items()}


def _same(a: dict[str, float], b: dict[str, float], rtol: float = 1e-6) -> None:
    assert set(a) == set(b)
    for k in a:
        assert rel(a[k], b[k]) <= rtol, (k, a[k], b[k])


def _state(model) -> dict:
    """Every value compare may touch: variables, optimizer (with iterations), metrics, fit's
    attributes, and the process's random state."""
    import keras
    from keras.src.backend.common import global_state
    from keras.src.random import seed_generator

    gen = global_state.get_global_attribute(seed_generator.GLOBAL_SEED_GENERATOR)
    return {
        "variables": [np.array(v) for v in model.variables],
        "optimizer": [np.array(v) for v in model.optimizer.variables],
        "iterations": int(model.optimizer.iterations),
        "metrics": [np.array(v) for v in model.metrics_variables],
        "stop_training": model.stop_training,
        "history": model.__dict__.get("history"),
        "train_function": model.__dict__.get("train_function"),
        "python": random.getstate(),
        "numpy": np.random.get_state()[1].copy(),
        "keras_seed": keras.utils.get_random_seed() if hasattr(keras.utils, "get_random_seed") else None,
        "seed_generator": gen, "seed_generator_state": None if gen is None else np.array(gen.state),
        "draw": None,
    }


def _assert_same_state(a: dict, b: dict) -> None:
    for key in ("variables", "optimizer", "metrics"):
        assert len(a[key]) == len(b[key]), key
        for u, v in zip(a[key], b[key], strict=True):
            np.testing.assert_array_equal(u, v, err_msg=key)
    for key in ("iterations", "stop_training", "python", "keras_seed"):
        assert a[key] == b[key], key
    for key in ("history", "train_function", "seed_generator"):
        assert a[key] is b[key], key
    np.testing.assert_array_equal(a["numpy"], b["numpy"])
    if a["seed_generator_state"] is not None:
        np.testing.assert_array_equal(a["seed_generator_state"], b["seed_generator_state"])


def test_compare_arrays_pipeline_cli_agree_with_keras(trained):
    import tensorflow as tf

    import losscheck

    model, x, y, folder = trained
    keras_evaluate = model.evaluate(x, y, batch_size=BATCH, verbose=0)[0]
    before = _state(model)
    by_arrays = losscheck.compare(model, x=x, y=y, batch_size=BATCH)
    by_pipeline = losscheck.compare(model, data=tf.data.Dataset.from_tensor_slices((x, y)).batch(BATCH))
    _assert_same_state(before, _state(model))
    cli = run_cli("compare", folder / "model.keras", folder / "data.npz", "--format", "json")
    assert cli.code in (0, 1), cli.stderr
    by_cli = {k: v["value"] for k, v in cli.json["figures"].items()}

    figures = _figures(by_arrays)
    assert {"fit_epoch", "train_mode", "train_mode_batchnorm_only", "evaluate", "manual",
            "regularization"} <= set(figures)
    assert rel(figures["evaluate"], keras_evaluate) <= 1e-6
    _same(figures, _figures(by_pipeline))
    _same(figures, by_cli)
    assert [f.code for f in by_arrays.findings] == [f["code"] for f in cli.json["findings"]]
    # the report is the JSON report
    report = by_arrays.to_dict()
    assert report["command"] == "compare" and report["model"]["format"] == "memory"
    assert report["data"] == {"path": "<arrays>", "samples": N, "batch_size": BATCH}
    assert by_pipeline.to_dict()["data"]["path"] == "<tf.data.Dataset>"
    assert report["exit_code"] == by_arrays.exit_code == by_arrays.exit_code()
    import json

    assert json.loads(by_arrays.to_json()) == report
    validate(report)
    f = by_arrays.findings[0]
    assert f.code and f.severity and f.message and f.magnitude is not None
    html = by_arrays._repr_html_()
    assert "<table" in html and "fit_epoch" in html and "&lt;in-memory model&gt;" in html
    assert by_arrays.to_markdown().startswith("### ")


@pytest.mark.slow
def test_pydataset_and_shuffled_pipeline(trained):
    import keras
    import tensorflow as tf

    import losscheck

    _, x, y, _ = trained
    model = _model(seed=2)  # with Dropout: its seed states, too, must come back as they were
    model.fit(x, y, batch_size=BATCH, epochs=1, verbose=0)

    class Batches(keras.utils.PyDataset):
        def __len__(self):
            return -(-N // BATCH)

        def __getitem__(self, i):
            return x[i * BATCH:(i + 1) * BATCH], y[i * BATCH:(i + 1) * BATCH]

    before = _state(model)
    plain = losscheck.compare(model, x=x, y=y, batch_size=BATCH, probe_samples=40)
    by_sequence = losscheck.compare(model, data=Batches(), probe_samples=40)
    _same(_figures(plain), _figures(by_sequence))
    assert plain.figures["train_mode"].extra == {"samples": 40}
    assert "shuffled-data" not in {f.code for f in by_sequence.findings}
    shuffled = tf.data.Dataset.from_tensor_slices((x, y)).shuffle(N, seed=3).batch(BATCH)
    report = losscheck.compare(model, data=shuffled, select="shuffled-data,weight-update")
    assert "shuffled-data" in {f.code for f in report.findings}
    assert {f.code for f in report.findings} <= {"shuffled-data", "weight-update"}
    # evaluate does not depend on the order: same value as Keras on the arrays
    assert rel(report.figures["evaluate"].value, plain.figures["evaluate"].value) <= 1e-5
    _assert_same_state(before, _state(model))


@pytest.mark.slow
def test_untrained_model_stays_unbuilt():
    import losscheck

    x, y = _data()
    model = _model()
    report = losscheck.compare(model, x=x, y=y)
    assert not model.optimizer.built and "history" not in model.__dict__
    assert rel(report.figures["evaluate"].value, model.evaluate(x, y, verbose=0)[0]) <= 1e-6


def test_breakdown_and_inspect_in_memory(trained):
    import keras

    import losscheck

    model, x, y, folder = trained

    class Batches(keras.utils.PyDataset):  # a PyDataset, streamed batch by batch
        def __len__(self):
            return -(-N // BATCH)

        def __getitem__(self, i):
            return x[i * BATCH:(i + 1) * BATCH], y[i * BATCH:(i + 1) * BATCH]

    mem = losscheck.breakdown(model, x=x, y=y, per="sample", top=3)
    seq = losscheck.breakdown(model, Batches(), per="sample", top=3)
    cli = run_cli("breakdown", folder / "model.keras", folder / "data.npz", "--per-sample", "--top", "3",
                  "--format", "json")
    assert mem.to_dict()["per_sample"] == seq.to_dict()["per_sample"] == cli.json["per_sample"]
    assert rel(mem.to_dict()["total"], cli.json["total"]) <= 1e-9
    assert seq.to_dict()["data"] == {"path": "<Batches>", "samples": N, "batch_size": BATCH}
    info = losscheck.inspect(model)
    assert info.command == "inspect" and info.to_dict()["training_layers"]["batchnorm"]


def test_api_errors_are_one_line():
    import losscheck
    from losscheck.core.errors import LosscheckError

    x, y = _data()
    model = _model()
    for call in (lambda: losscheck.compare(model, x=x[:, :3], y=y),
                 lambda: losscheck.compare(model),
                 lambda: losscheck.compare(model, x=x, y=y, loss="mse"),
                 lambda: losscheck.compare(model, x=x, y=y, select="no-such-code"),
                 lambda: losscheck.breakdown(model, x=x, y=y, per="row"),
                 lambda: losscheck.compare(object(), x=x, y=y)):
        with pytest.raises(LosscheckError) as info:
            call()
        assert "\n" not in info.value.message


def test_cli_function_and_tfrecord_data(trained, tmp_path):
    import tensorflow as tf

    _, x, y, folder = trained
    code = textwrap.dedent(f"""
        import numpy as np
        import tensorflow as tf

        def arrays():
            d = np.load({str(folder / "data.npz")!r})
            return d["x"], d["y"]

        def pipeline():
            return tf.data.Dataset.from_tensor_slices(arrays()).batch({BATCH})

        def parse(record):
            f = tf.io.parse_single_example(record, {{"x": tf.io.FixedLenFeature([6], tf.float32),
                                                     "y": tf.io.FixedLenFeature([1], tf.float32)}})
            return f["x"], f["y"]
    """)
    (tmp_path / "data_fn.py").write_text(code)
    records = tmp_path / "records"
    records.mkdir()
    for part in range(2):  # two files, read in name order
        with tf.io.TFRecordWriter(str(records / f"part-{part}.tfrecord")) as writer:
            for i in range(part * N // 2, (part + 1) * N // 2):
                feature = {"x": tf.train.Feature(float_list=tf.train.FloatList(value=x[i])),
                           "y": tf.train.Feature(float_list=tf.train.FloatList(value=y[i]))}
                writer.write(tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString())
    model = folder / "model.keras"
    base = run_cli("compare", model, folder / "data.npz", "--format", "json").json
    runs = [run_cli("compare", model, f"{tmp_path / 'data_fn.py'}:pipeline", "--format", "json")]
    runs.append(run_cli("compare", model, records, "--parse", f"{tmp_path / 'data_fn.py'}:parse", "--format", "json"))
    for res in runs:
        assert res.code in (0, 1), res.stderr
        _same({k: v["value"] for k, v in base["figures"].items()},
              {k: v["value"] for k, v in res.json["figures"].items()})
        assert res.json["data"]["samples"] == N
    bad = run_cli("compare", model, f"{tmp_path / 'data_fn.py'}:missing")
    assert bad.code == 2 and "missing" in bad.stderr and len(bad.stderr.strip().splitlines()) == 1


def test_callback_explains_logged_loss_and_changes_nothing():
    import keras

    from losscheck.callbacks import LossCheck

    x, y = _data()
    xt, yt = x[:80], y[:80]

    def run(callbacks):
        model = _model(seed=5)
        history = model.fit(x, y, batch_size=16, epochs=2, validation_split=1 / 6, verbose=0, callbacks=callbacks,
                            shuffle=False)
        return model, history

    plain_model, plain = run([])
    check = LossCheck(x=xt, y=yt, batch_size=16, verbose=0, on="epoch_end")
    model, history = run([check])
    assert_same_training(plain_model, plain, model, history)
    assert len(check.reports) == 2
    for epoch, report in enumerate(check.reports):
        assert report.figures["fit_logged"].value == history.history["loss"][epoch]
        assert report.figures["val_loss_logged"].value == history.history["val_loss"][epoch]
        assert report.sections["epoch"] == epoch
    last = check.reports[-1]
    assert rel(last.figures["evaluate"].value, model.evaluate(xt, yt, batch_size=16, verbose=0)[0]) <= 1e-6
    codes = {f.code for f in last.findings}
    assert {"weight-update", "regularization"} <= codes
    update = next(f for f in last.findings if f.code == "weight-update")
    assert update.between == ("fit_logged", "train_mode")
    assert update.magnitude == pytest.approx(last.figures["fit_logged"].value - last.figures["train_mode"].value)
    assert last.to_dict()["command"] == "callback"
    for report in check.reports:
        validate(report.to_dict())
    assert isinstance(check, keras.callbacks.Callback)


def test_callback_on_train_end_with_pipeline(capsys):
    import tensorflow as tf

    from losscheck.callbacks import LossCheck

    x, y = _data()
    ds = tf.data.Dataset.from_tensor_slices((x, y)).batch(BATCH)
    check = LossCheck(data=ds, on="train_end", verbose=1)
    model = _model(seed=7)
    history = model.fit(ds, epochs=2, verbose=0, callbacks=[check])
    assert len(check.reports) == 1
    report = check.reports[0]
    assert report.figures["fit_logged"].value == history.history["loss"][-1]
    assert rel(report.figures["evaluate"].value, model.evaluate(ds, verbose=0)[0]) <= 1e-6
    line = capsys.readouterr().out
    assert line.startswith(f"losscheck epoch 2: {report.summary} | ") and line.count("\n") == 1
    assert f"Fit logged {report.figures['fit_logged'].value:.3g} and evaluate gives" in line


def test_shuffling_pipeline_is_detected():
    """Two passes over a reshuffling pipeline give different orders; a fixed order is not reported."""
    import tensorflow as tf

    from losscheck.loading.pipelines import PipelineDataset, data_measurements
    from losscheck.measurements import Measurements
    from losscheck.rules.data import shuffled_data

    def pipeline_findings(data):
        return shuffled_data(Measurements("compare", data=data_measurements(data, BATCH)))


    x, y = _data()
    base = tf.data.Dataset.from_tensor_slices((x, y))
    shuffled = PipelineDataset(base.shuffle(N, seed=3).batch(BATCH), ["x"], ["y"])
    fixed = PipelineDataset(base.shuffle(N, seed=3, reshuffle_each_iteration=False).batch(BATCH), ["x"], ["y"])
    for ds in (shuffled, fixed):
        assert ds.n == N and list(ds.batch_bounds()) == [(0, 32), (32, 64), (64, 96)]
    assert [f.code for f in pipeline_findings(shuffled)] == ["shuffled-data"]
    assert pipeline_findings(fixed) == []
    rows, _, _ = fixed.slice(30, 40)  # rows across a batch boundary, in the pipeline's (fixed) order
    first = next(fixed.batches())
    second = list(fixed.batches())[1]
    np.testing.assert_array_equal(rows[0], np.concatenate([first[2][0][30:], second[2][0][:8]]))


@pytest.mark.slow
def test_cli_image_directory_pipeline(tmp_path):
    """DATA FILE.py:FUNC returning keras.utils.image_dataset_from_directory: stdout stays the JSON report
    (the function's "Found N files" goes to stderr), evaluate equals Keras's on the same pipeline."""
    import keras

    rng = np.random.default_rng(0)
    for label in ("cat", "dog"):
        (tmp_path / "images" / label).mkdir(parents=True)
        for i in range(12):
            keras.utils.save_img(tmp_path / "images" / label / f"{i}.png",
                                 rng.integers(0, 255, size=(8, 8, 3)).astype("uint8"))
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((8, 8, 3)), keras.layers.Rescaling(1 / 255), keras.layers.Flatten(),
                              keras.layers.Dense(2, activation="softmax")])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    model.save(tmp_path / "model.keras")
    (tmp_path / "images_fn.py").write_text(textwrap.dedent(f"""
        import keras

        def images():
            return keras.utils.image_dataset_from_directory({str(tmp_path / "images")!r}, image_size=(8, 8),
                                                             batch_size=10, shuffle=False)
    """))
    res = run_cli("compare", tmp_path / "model.keras", f"{tmp_path / 'images_fn.py'}:images", "--format", "json")
    assert res.code in (0, 1), res.stderr
    assert res.json["data"] == {"path": f"{tmp_path / 'images_fn.py'}:images", "samples": 24, "batch_size": 10}
    dataset = keras.utils.image_dataset_from_directory(tmp_path / "images", image_size=(8, 8), batch_size=10,
                                                       shuffle=False)
    assert rel(res.json["figures"]["evaluate"]["value"], model.evaluate(dataset, verbose=0)) <= 1e-6
    assert "shuffled-data" not in {f["code"] for f in res.json["findings"]}


def test_callback_measures_custom_training_layers():
    """A user layer whose call() takes `training` is a family of the callback's figures too, as in
    compare: train_mode_custom_only is Keras's loss with that layer in training mode, and the gap is
    named after the layer."""
    import keras

    from losscheck.callbacks import LossCheck

    class Shift(keras.layers.Layer):
        def call(self, inputs, training=None):
            return inputs + 0.5 if training else inputs

    x, y = _data()
    keras.utils.set_random_seed(3)
    model = keras.Sequential([keras.Input((6,)), keras.layers.Dense(8, activation="relu"), Shift(name="shift"),
                              keras.layers.Dense(1, activation="sigmoid")])
    model.compile(optimizer="adam", loss="binary_crossentropy")
    check = LossCheck(x=x, y=y, batch_size=16, verbose=0, on="epoch_end")
    model.fit(x, y, batch_size=16, epochs=1, verbose=0, callbacks=[check], shuffle=False)
    [report] = check.reports
    fig = {k: f.value for k, f in report.figures.items()}
    trained = float(np.mean(keras.losses.binary_crossentropy(y, model(x, training=True))))
    assert rel(fig["train_mode_custom_only"], trained) <= 1e-5
    assert rel(fig["train_mode"], trained) <= 1e-5
    [finding] = [f for f in report.findings if f.code == "noise-layer"]
    assert finding.subject == "shift" and finding.between == ("train_mode_custom_only", "evaluate")
    assert finding.magnitude == pytest.approx(fig["train_mode_custom_only"] - fig["evaluate"])
    assert not [f for f in report.findings if f.code in ("unexplained", "interaction")]
