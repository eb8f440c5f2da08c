"""`losscheck compare` on the issue-3 fixtures (fixtures/build_reference.py): manual + regularization equals
Keras's evaluate (computed here), and each semantic effect is named and sized, never `unexplained`."""

from __future__ import annotations

import numpy as np
import pytest

from tests.conftest import fixture_files, load_npz, rel, run_cli

pytestmark = pytest.mark.keras

EXPECTED = {
    "saturated_softmax": {"logits-shortcut"},
    "masked_sequence": {"mask", "sample-weight"},
    "squeezed_sigmoid": {"probability-clipping"},
}
SEMANTIC = {"mask", "logits-shortcut", "probability-clipping", "mixed-precision", "sample-weight"}


@pytest.mark.parametrize("name", [
    "masked_sequence",
    # the two others are covered in-process by tests/test_semantics_keras.py; through the CLI: slow
    pytest.param("saturated_softmax", marks=pytest.mark.slow),
    pytest.param("squeezed_sigmoid", marks=pytest.mark.slow),
])
def test_compare_names_the_semantic_effects(name):
    import keras

    model_path, data_path = fixture_files(name)
    res = run_cli("compare", model_path, data_path, "--format", "json")
    assert res.code in (0, 1), res.stderr
    out = res.json
    fig = {k: v["value"] for k, v in out["figures"].items()}
    arrays = load_npz(data_path)
    model = keras.saving.load_model(model_path)
    x, y, sw = arrays["x"], arrays["y"], arrays.get("sample_weight")
    evaluate = model.evaluate(x, y, sample_weight=sw, batch_size=32, verbose=0)
    assert rel(fig["manual"] + fig["regularization"], evaluate) < 1e-5
    found = {f["code"]: f for f in out["findings"]}
    assert set(found) & SEMANTIC == EXPECTED[name]
    assert "unexplained" not in found
    probs = model.predict(x, batch_size=32, verbose=0)
    if name == "saturated_softmax":
        natural = float(keras.losses.SparseCategoricalCrossentropy()(y, probs))
        assert rel(found["logits-shortcut"]["magnitude"], evaluate - natural) < 1e-4
    elif name == "squeezed_sigmoid":
        assert found["probability-clipping"]["magnitude"] is None or found["probability-clipping"]["magnitude"] < 0
        assert out["natural_numpy"]["no_masks"] == pytest.approx(evaluate, rel=1e-5)
    else:
        natural = float(np.mean(keras.losses.binary_crossentropy(y, probs)))  # no weights, no mask
        unweighted = found["sample-weight"]["magnitude"]
        assert rel(found["mask"]["magnitude"] + unweighted, evaluate - natural) < 1e-4
