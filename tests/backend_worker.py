"""Run in a fresh subprocess (tests/test_backends.py): for each fixture named on the command line,
losscheck compare's JSON report with `--backend BACKEND` (the first compare imports Keras on it), then
Keras's own evaluate and one-epoch fit on that backend, printed as one JSON object
{fixture: {"code", "stderr", "report", "evaluate", "fit"}}.

    python -m tests.backend_worker jax dense_story4 bn_shift
"""

from __future__ import annotations

import json
import sys


def keras_figures(name: str) -> tuple[float, float]:
    """evaluate and fit (epochs=1, shuffle=False) as Keras computes them, each on a fresh load."""
    from tests.test_compare_keras import keras_args, keras_model

    model = keras_model(name)
    x, y, sw = keras_args(name, model)
    ev = model.evaluate(x, y, batch_size=32, sample_weight=sw, verbose=0, return_dict=True)["loss"]
    fit_model = keras_model(name)
    hist = fit_model.fit(x, y, batch_size=32, epochs=1, shuffle=False, sample_weight=sw, verbose=0)
    return float(ev), float(hist.history["loss"][-1])


def main(backend: str, names: list[str]) -> None:
    from tests.conftest import fixture_files, run_cli

    out = {}
    for name in names:
        model, data = fixture_files(name)
        res = run_cli("compare", model, data, "--format", "json", "--backend", backend)
        entry = {"code": res.code, "stderr": res.stderr[-2000:]}
        if res.code in (0, 1):
            entry["report"] = res.json
            entry["evaluate"], entry["fit"] = keras_figures(name)
        out[name] = entry
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2:])
