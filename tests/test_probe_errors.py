"""Data Keras itself cannot compute a loss on: one clear line and exit 2, never an internal error."""

from __future__ import annotations

import pytest

from tests.conftest import rel, run_cli

pytestmark = pytest.mark.keras


def test_unbroadcastable_sample_weight_is_a_data_error_with_a_working_hint(tmp_path):
    import keras
    import numpy as np

    rng = np.random.default_rng(1)
    x = rng.normal(size=(40, 8, 8, 1)).astype("float32")
    y = (rng.uniform(size=(40, 8, 8, 2)) > 0.5).astype("float32")
    sw = rng.uniform(size=40).astype("float32")
    m = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Conv2D(2, 1, activation="sigmoid")])
    m.compile("adam", "binary_crossentropy")
    m.save(tmp_path / "m.keras")
    np.savez(tmp_path / "bad.npz", x=x, y=y, sample_weight=sw)
    res = run_cli("compare", tmp_path / "m.keras", tmp_path / "bad.npz")
    assert res.code == 2
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and "internal error" not in lines[0] and "Traceback" not in res.stderr
    assert "bad.npz" in lines[0] and "sample_weight of shape (40,)" in lines[0] and "(n, 1, 1)" in lines[0]
    # the suggested shape works, and gives Keras's own number
    np.savez(tmp_path / "good.npz", x=x, y=y, sample_weight=sw.reshape(40, 1, 1))
    good = run_cli("compare", tmp_path / "m.keras", tmp_path / "good.npz", "--format", "json")
    assert good.code in (0, 1), good.stderr
    ev = keras.saving.load_model(tmp_path / "m.keras").evaluate(x, y, sample_weight=sw.reshape(40, 1, 1), verbose=0)
    assert rel(good.json["figures"]["evaluate"]["value"], ev) < 1e-4
