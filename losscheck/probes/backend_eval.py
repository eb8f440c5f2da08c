"""`KERAS_BACKEND=BACKEND python -m losscheck.probes.backend_eval BACKEND MODEL DATA [--batch-size N]
[--seed S] [--custom-objects F] [--loss SPEC] [--unsafe]`: Keras's evaluate of a model file on a data
file on BACKEND, printed as one JSON line {"backend", "evaluate"}. Started by `--parity backends`
(losscheck.probes.parity.backend_evaluate) with KERAS_BACKEND set, since importing this package
imports Keras; a Keras on another backend than BACKEND is refused (exit 2)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="losscheck.probes.backend_eval")
    parser.add_argument("backend")
    parser.add_argument("model", type=Path)
    parser.add_argument("data", type=Path)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--custom-objects", type=Path)
    parser.add_argument("--loss")
    parser.add_argument("--unsafe", action="store_true")
    args = parser.parse_args(argv)
    from losscheck._tf import keras

    if keras.backend.backend() != args.backend:
        print(f"Keras runs on {keras.backend.backend()}, not {args.backend}: set KERAS_BACKEND={args.backend}",
              file=sys.stderr)
        return 2

    from losscheck.core.config import Config
    from losscheck.core.errors import LosscheckError
    from losscheck.loading.inputs import load_inputs
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
    print(json.dumps({"backend": keras.backend.backend(), "evaluate": value}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
