"""`python -m losscheck._backend_eval BACKEND MODEL DATA [--batch-size N] [--seed S] [--custom-objects F]
[--loss SPEC] [--unsafe]`: Keras's evaluate of a model file on a data file on BACKEND, printed as one JSON
line {"backend", "evaluate"}. Started by `--parity backends` (losscheck.probes.parity.backend_evaluate);
KERAS_BACKEND is set here, before anything imports Keras."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="losscheck._backend_eval")
    parser.add_argument("backend")
    parser.add_argument("model", type=Path)
    parser.add_argument("data", type=Path)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--custom-objects", type=Path)
    parser.add_argument("--loss")
    parser.add_argument("--unsafe", action="store_true")
    args = parser.parse_args(argv)
    os.environ["KERAS_BACKEND"] = args.backend

    from losscheck.compare import load_inputs
    from losscheck.config import Config
    from losscheck.errors import LosscheckError
    from losscheck.probes.parity import keras_evaluate

    cfg = Config(model_path=args.model, data_path=args.data, batch_size=args.batch_size,
                 custom_objects=args.custom_objects, loss=args.loss, unsafe=args.unsafe, seed=args.seed)
    try:
        loaded, data = load_inputs(cfg, lambda _msg: None)
        try:
            value = keras_evaluate(loaded.model, data, args.batch_size)
        finally:
            data.close()
    except LosscheckError as exc:
        print(exc.message, file=sys.stderr)
        return 2
    from losscheck._tf import keras

    print(json.dumps({"backend": keras.backend.backend(), "evaluate": value}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
