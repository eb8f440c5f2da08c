"""Time a fit with or without the LossCheck callback: load the model, fit it for --epochs on DATA
(batch size --batch-size, shuffle=False) and print the seconds the fit call took, the callback's checks
included (`fit_seconds S cpu C`, C: the process's CPU seconds in it). Imports and loading are outside the timing.

python benchmarks/fit_callback.py MODEL DATA [--epochs 3] [--batch-size 64] [--losscheck [--on train_end]]
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("data")
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--losscheck", action="store_true", help="fit with LossCheck at its default settings")
    ap.add_argument("--on", default="train_end", help="LossCheck's on= (default train_end, its default)")
    args = ap.parse_args()

    import keras
    import numpy as np

    with np.load(args.data) as f:
        x, y = f["x"], f["y"]
    model = keras.saving.load_model(args.model)
    callbacks = []
    if args.losscheck:
        from losscheck.callbacks import LossCheck

        callbacks.append(LossCheck(data=(x, y), batch_size=args.batch_size, verbose=0, on=args.on))
    t0, c0 = time.perf_counter(), time.process_time()
    model.fit(x, y, batch_size=args.batch_size, epochs=args.epochs, shuffle=False, verbose=0, callbacks=callbacks)
    print(f"fit_seconds {time.perf_counter() - t0:.3f} cpu {time.process_time() - c0:.3f}")
    if args.losscheck:
        print(f"checks {len(callbacks[0].reports)}")


if __name__ == "__main__":
    main()
