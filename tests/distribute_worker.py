"""Run in a fresh subprocess (tests/test_distribute.py): split the CPU into 2 logical devices (before
TensorFlow initializes them), then for each MODEL DATA [CUSTOM_OBJECTS] triple given as JSON on argv[1]
print losscheck compare's JSON with --distribute mirrored and Keras's own evaluate under a
MirroredStrategy over the same 2 devices: {"reports": [...], "keras_evaluate": [...]}.

    python -m tests.distribute_worker '[["m.keras", "d.npz", null]]'
"""

from __future__ import annotations

import json
import sys


def main(cases: list[list]) -> None:
    import tensorflow as tf

    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    import importlib.util

    import keras
    import numpy as np

    from tests.conftest import run_cli

    reports, evaluates = [], []
    for model, data, custom in cases:
        args = ["compare", model, data, "--format", "json", "--distribute", "mirrored"]
        objects = {}
        if custom:
            args += ["--custom-objects", custom]
            spec = importlib.util.spec_from_file_location("lc_custom", custom)
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
            objects = {k: v for k, v in vars(module).items() if callable(v) and not k.startswith("_")}
        res = run_cli(*args)
        reports.append({"code": res.code, "stderr": res.stderr[-2000:], "report": res.json if res.code in (0, 1)
                        else None})
        from losscheck.probes.distribute import strategy_for

        strategy = strategy_for("mirrored")  # the run's own: a second one over the same devices would clash
        assert strategy.num_replicas_in_sync == 2
        with strategy.scope():
            m = keras.saving.load_model(model, custom_objects=objects)
        with np.load(data) as d:
            evaluates.append(float(m.evaluate(d["x"], d["y"], batch_size=32, verbose=0)))
    json.dump({"reports": reports, "keras_evaluate": evaluates}, sys.stdout)


if __name__ == "__main__":
    main(json.loads(sys.argv[1]))
