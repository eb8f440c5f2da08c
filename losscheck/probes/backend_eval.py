"""`KERAS_BACKEND=BACKEND python -m losscheck.probes.backend_eval BACKEND MODEL DATA [--batch-size N]
[--seed S] [--custom-objects F] [--loss SPEC] [--unsafe] [--fit] [--class-weight JSON]`: Keras's evaluate
of a model file on a data file on BACKEND and, with --fit, the fit probe's one-epoch fit after it (from the
same saved weights and optimizer state, losscheck.probes.fitting.fit_epoch_restoring), printed as one JSON
line {"backend", "evaluate"[, "fit_epoch"]}. Started by `--parity backends`
(losscheck.probes.parity.backend_figures) with KERAS_BACKEND set, since importing this package
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
    parser.add_argument("--fit", action="store_true")
    parser.add_argument("--class-weight", type=json.loads)
    args = parser.parse_args(argv)
    from losscheck._tf import keras

    if keras.backend.backend() != args.backend:
        print(f"Keras runs on {keras.backend.backend()}, not {args.backend}: set KERAS_BACKEND={args.backend}",
              file=sys.stderr)
        return 2

    from losscheck.core.config import Config
    from losscheck.core.errors import LosscheckError
    from losscheck.loading.inputs import load_inputs
    from losscheck.probes.fitting import fit_epoch_restoring
    from losscheck.probes.parity import keras_evaluate

    class_weight = {int(k): float(v) for k, v in args.class_weight.items()} if args.class_weight else None
    cfg = Config(model_path=args.model, data_path=args.data, batch_size=args.batch_size,
                 custom_objects=args.custom_objects, loss=args.loss, unsafe=args.unsafe, seed=args.seed)
    out: dict[str, object] = {"backend": keras.backend.backend()}
    try:
        loaded, data = load_inputs(cfg, lambda _msg: None)
        try:
            out["evaluate"] = keras_evaluate(loaded.model, data, args.batch_size)
            if args.fit and loaded.optimizer_problem is None:
                out["fit_epoch"] = fit_epoch_restoring(loaded.model, data, args.batch_size, class_weight, args.seed)
        finally:
            data.close()
    except LosscheckError as exc:
        print(exc.message, file=sys.stderr)
        return 2
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
