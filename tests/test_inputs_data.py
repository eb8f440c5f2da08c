"""Issue 6: data files. npz without pickle, h5 read batch by batch, key mapping, sample counts,
shapes against the model's inputs, label kinds against the loss, empty data, NaN/Inf let through.
Every refusal: exit 2, one line naming the file, no traceback."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import FIXTURES, load_npz, rel, run_cli
from tests.test_loading_models import K3, K3_EXPECTED, assert_refused

pytestmark = pytest.mark.keras

MSE = K3 / "mse_str.h5"  # x (n, 4) -> out (n, 1), loss mse
SPARSE = K3 / "sparse.keras"  # softmax 3 classes, sparse_categorical_crossentropy
ONEHOT = K3 / "onehot.keras"  # softmax 3 classes, categorical_crossentropy
TWO_IN = K3 / "two_in.keras"  # inputs a (4,), b (2,) -> out (1,)


def base() -> dict[str, np.ndarray]:
    return load_npz(K3 / "mse_str.npz")


def write_npz(path: Path, **arrays) -> Path:
    np.savez(path, **arrays)
    return path


def write_h5(path: Path, **arrays) -> Path:
    import h5py

    with h5py.File(path, "w") as f:
        for k, v in arrays.items():
            f.create_dataset(k, data=v, chunks=True if np.ndim(v) else None)
    return path


def refused(model: Path, data: Path, *phrases: str) -> str:
    return assert_refused(run_cli("compare", model, data), data.name, *phrases)


# ----------------------------------------------------------------------------------------------
# npz
# ----------------------------------------------------------------------------------------------
def test_object_arrays_are_never_unpickled(tmp_path):
    d = base()
    p = write_npz(tmp_path / "obj.npz", x=d["x"], y=np.array([{"a": 1}] * len(d["y"]), dtype=object))
    refused(MSE, p, "'y'", "Python objects", "never unpickles")


def test_pickle_named_npz_is_refused(tmp_path):
    p = tmp_path / "pickled.npz"
    p.write_bytes(pickle.dumps({"x": [1, 2]}))
    refused(MSE, p, "pickled", "never unpickles")
    q = tmp_path / "data.pkl"
    q.write_bytes(pickle.dumps({"x": [1, 2]}))
    refused(MSE, q, "pickle")


def test_single_npy_and_foreign_files(tmp_path):
    np.save(tmp_path / "x.npy", base()["x"])
    refused(MSE, tmp_path / "x.npy", "single .npy array")
    (tmp_path / "data.csv").write_text("1,2,3\n")
    refused(MSE, tmp_path / "data.csv", "neither an .npz nor an HDF5")
    refused(MSE, MSE, "Keras model file, not a data file")  # the model passed as data


def test_string_arrays_refused(tmp_path):
    d = base()
    p = write_npz(tmp_path / "str.npz", x=d["x"], y=np.array(["a"] * len(d["y"])))
    refused(MSE, p, "'y'", "not numbers")


def test_empty_data_refused(tmp_path):
    p = write_npz(tmp_path / "empty.npz", x=np.zeros((0, 4), "float32"), y=np.zeros((0, 1), "float32"))
    refused(MSE, p, "no samples")


def test_sample_counts_must_agree(tmp_path):
    d = base()
    refused(MSE, write_npz(tmp_path / "n.npz", x=d["x"], y=d["y"][:-3]), "disagree on the number of samples",
            "x (40, 4)", "y (37, 1)")
    refused(MSE, write_npz(tmp_path / "sw.npz", x=d["x"], y=d["y"], sample_weight=np.ones(5, "float32")),
            "disagree on the number of samples", "sample_weight (5,)")
    refused(TWO_IN, write_npz(tmp_path / "ab.npz", x_a=d["x"], x_b=d["x"][:10, :2], y=d["y"]),
            "x_a (40, 4)", "x_b (10, 2)")


def test_key_mapping_messages(tmp_path):
    d = base()
    refused(MSE, write_npz(tmp_path / "noy.npz", x=d["x"]), "no target arrays", "expected 'y'")
    extra = run_cli("compare", MSE, write_npz(tmp_path / "extra.npz", x=d["x"], y=d["y"], z=d["y"]), "--format",
                    "json")  # an array the model does not read is left out, with a note
    assert extra.code in (0, 1), extra.stderr
    assert "extra.npz: read 'x', 'y'; left out 1 other entry the model does not use: 'z'" in extra.json["notes"]
    line = refused(TWO_IN, write_npz(tmp_path / "one.npz", x=d["x"], y=d["y"]), "no input arrays")
    assert "'x_a', 'x_b'" in line and "'x_0', 'x_1'" in line


def test_named_positional_and_h5_keys_agree(tmp_path):
    """x_<input name> / x_0.. and npz / h5 all give Keras's evaluate value."""
    expected = K3_EXPECTED["two_in.keras"]["evaluate"]
    two = load_npz(K3 / "two_in.npz")
    h5 = write_h5(tmp_path / "two_in.h5", **two)
    fits = []
    for data in (K3 / "two_in.npz", K3 / "two_in_pos.npz", h5):
        res = run_cli("compare", TWO_IN, data, "--format", "json")
        assert res.code in (0, 1), res.stderr
        assert rel(res.json["figures"]["evaluate"]["value"], expected) < 1e-4
        assert res.json["data"]["samples"] == 40
        fits.append(res.json["figures"]["fit_epoch"]["value"])
    assert rel(fits[2], fits[0]) < 1e-5  # the fit probe streams h5 batches (several inputs) like the arrays


def test_multi_output_h5_data(tmp_path):
    from tests.test_loading_models import TFK, TFK_EXPECTED

    h5 = write_h5(tmp_path / "two_dict.h5", **load_npz(TFK / "two_dict.npz"))
    res = run_cli("compare", TFK / "two_dict.h5", h5, "--format", "json")
    assert res.code in (0, 1), res.stderr
    assert rel(res.json["figures"]["evaluate"]["value"], TFK_EXPECTED["two_dict"]["evaluate"]) < 1e-4


# ----------------------------------------------------------------------------------------------
# Against the model
# ----------------------------------------------------------------------------------------------
def test_input_shape_must_fit_the_named_input(tmp_path):
    d = base()
    line = refused(MSE, write_npz(tmp_path / "wide.npz", x=np.zeros((40, 5), "float32"), y=d["y"]),
                   "'x'", "(40, 5)", "(n, 4)")
    assert "input 'x'" in line
    two = load_npz(K3 / "two_in.npz")
    line = refused(TWO_IN, write_npz(tmp_path / "b3.npz", x_a=two["x_a"], x_b=np.zeros((40, 3)), y=two["y"]),
                   "input 'b'", "(40, 3)", "(n, 2)")
    refused(MSE, write_npz(tmp_path / "rank.npz", x=np.zeros((40, 4, 2)), y=d["y"]), "(40, 4, 2)", "(n, 4)")


def test_one_hot_where_sparse_expected_and_vice_versa():
    line = refused(SPARSE, K3 / "sparse_onehot.npz", "looks one-hot", "sparse_categorical_crossentropy", "(40,)")
    assert "argmax" in line
    line = refused(ONEHOT, K3 / "onehot_sparse.npz", "class indices", "categorical_crossentropy", "(40, 3)")
    assert "one-hot encode" in line


def test_target_shape_must_fit_the_output(tmp_path):
    d = base()
    refused(MSE, write_npz(tmp_path / "y3.npz", x=d["x"], y=np.zeros((40, 3, 2), "float32")),
            "target 'y'", "(40, 3, 2)", "output 'out'")
    model = FIXTURES / "gaussian_noise" / "model.keras"  # output (None, 2)
    x = load_npz(FIXTURES / "gaussian_noise" / "data.npz")["x"]
    refused(model, write_npz(tmp_path / "y_wide.npz", x=x, y=np.zeros((len(x), 3), "float32")),
            "(64, 3)", "does not fit")


def test_integer_and_float64_data_are_accepted(tmp_path):
    d = base()
    p = write_npz(tmp_path / "f64.npz", x=d["x"].astype("float64"), y=d["y"].astype("float64"))
    res = run_cli("compare", MSE, p, "--format", "json")
    assert res.code in (0, 1), res.stderr
    assert rel(res.json["figures"]["evaluate"]["value"], K3_EXPECTED["mse_str.h5"]["evaluate"]) < 1e-4
    y_int = load_npz(K3 / "sparse.npz")
    p = write_npz(tmp_path / "int32.npz", x=y_int["x"], y=y_int["y"].astype("int32").reshape(-1, 1))
    res = run_cli("compare", SPARSE, p, "--format", "json")
    assert res.code in (0, 1), res.stderr
    assert rel(res.json["figures"]["evaluate"]["value"], K3_EXPECTED["sparse.keras"]["evaluate"]) < 1e-4


def test_nan_and_inf_are_let_through(tmp_path):
    """NaN/Inf are a finding (non-finite), never a loading error or a crash."""
    from losscheck.loading.data import load_data
    from losscheck.loading.model import load_model

    d = base()
    x, y = d["x"].copy(), d["y"].copy()
    x[3, 1] = np.nan
    y[5, 0] = np.inf
    for p in (write_npz(tmp_path / "nan.npz", x=x, y=y), write_h5(tmp_path / "nan.h5", x=x, y=y)):
        loaded = load_model(MSE)
        ds = load_data(p, ["x"], loaded.output_names, model=loaded)
        assert ds.n == 40 and np.isnan(ds.slice(0, 8)[0][0][3, 1])
        ds.close()
        res = run_cli("compare", MSE, p)
        assert res.code in (0, 1), res.stderr
        assert "Traceback" not in res.stderr


# ----------------------------------------------------------------------------------------------
# h5
# ----------------------------------------------------------------------------------------------
def test_h5_data_is_lazy_and_matches_npz(tmp_path):
    from losscheck.loading.data import load_data

    d = base()
    p = write_h5(tmp_path / "data.h5", **d)
    ds = load_data(p, ["x"], ["out"])
    try:
        assert ds.streamed and not isinstance(ds.x[0], np.ndarray)  # h5py datasets, sliced per batch
        xs, ys, _ = ds.slice(8, 16)
        assert np.array_equal(xs[0], d["x"][8:16]) and np.array_equal(ys[0], d["y"][8:16])
    finally:
        ds.close()
    res = run_cli("compare", MSE, p, "--format", "json")
    assert res.code in (0, 1), res.stderr
    assert rel(res.json["figures"]["evaluate"]["value"], K3_EXPECTED["mse_str.h5"]["evaluate"]) < 1e-4


def test_broken_h5_and_npz_data(tmp_path):
    import h5py

    d = base()
    good = write_h5(tmp_path / "good.h5", **d).read_bytes()
    (tmp_path / "trunc.h5").write_bytes(good[: len(good) // 3])
    refused(MSE, tmp_path / "trunc.h5", "truncated")
    raw = (K3 / "mse_str.npz").read_bytes()
    (tmp_path / "trunc.npz").write_bytes(raw[: len(raw) // 2])
    refused(MSE, tmp_path / "trunc.npz", "truncated or corrupted")
    with h5py.File(tmp_path / "strings.h5", "w") as f:
        f["x"] = d["x"]
        f.create_dataset("y", data=np.array([b"a"] * 40, dtype=h5py.string_dtype()))
    refused(MSE, tmp_path / "strings.h5", "'y'", "not numbers")
    with h5py.File(tmp_path / "groups.h5", "w") as f:
        f.create_group("x").create_dataset("data", data=d["x"])
    refused(MSE, tmp_path / "groups.h5", "'x' is an HDF5 group, not a dataset")
    (tmp_path / "empty.h5").write_bytes(b"")
    refused(MSE, tmp_path / "empty.h5", "empty (0 bytes)")
    refused(MSE, tmp_path / "missing.npz", "not found")
    (tmp_path / "dir.npz").mkdir()
    refused(MSE, tmp_path / "dir.npz", "is a directory")


def test_h5_with_a_user_block_and_odd_names(tmp_path):
    """HDF5 with a 512-byte user block (signature not at byte 0), named .dat: read by content."""
    import h5py

    d = base()
    with h5py.File(tmp_path / "data.dat", "w", userblock_size=512) as f:
        for k, v in d.items():
            f[k] = v
    res = run_cli("compare", MSE, tmp_path / "data.dat", "--format", "json")
    assert res.code in (0, 1), res.stderr
    assert rel(res.json["figures"]["evaluate"]["value"], K3_EXPECTED["mse_str.h5"]["evaluate"]) < 1e-4


def test_class_index_out_of_range(tmp_path):
    d = load_npz(K3 / "sparse.npz")
    y = d["y"].copy()
    y[7] = 3
    refused(SPARSE, write_npz(tmp_path / "y3.npz", x=d["x"], y=y), "class index 3", "3 classes", "0..2")
    y[7] = -1
    refused(SPARSE, write_h5(tmp_path / "neg.h5", x=d["x"], y=y), "class index -1")


def test_integer_input_gets_integers(tmp_path):
    """A token input (int32) fed fractional floats is refused by name; integral floats are fine."""
    import keras

    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((5,), dtype="int32", name="tok"), keras.layers.Embedding(10, 3),
                              keras.layers.Flatten(), keras.layers.Dense(1, name="out")])
    model.compile("sgd", "mse")
    model.save(tmp_path / "tok.keras")
    tokens = np.random.default_rng(0).integers(0, 10, size=(12, 5))
    y = np.zeros((12, 1), "float32")
    refused(tmp_path / "tok.keras", write_npz(tmp_path / "frac.npz", x=tokens + 0.5, y=y),
            "input 'tok'", "int32", "fractional")
    res = run_cli("compare", tmp_path / "tok.keras", write_npz(tmp_path / "ok.npz", x=tokens.astype("float32"), y=y))
    assert res.code in (0, 1), res.stderr
