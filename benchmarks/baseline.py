"""What a user writes by hand to get the figures losscheck compares: load the model, `evaluate`,
`predict` + a numpy crossentropy, and a one-epoch `fit(shuffle=False)` on a second copy.

python benchmarks/baseline.py MODEL DATA [--batch-size 64]      (DATA: .npz or .h5 with x, y)
"""

from __future__ import annotations

import argparse
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("data")
    ap.add_argument("--batch-size", type=int, default=64)
    args = ap.parse_args()

    import keras
    import numpy as np

    if args.data.endswith((".h5", ".hdf5")):
        import h5py

        with h5py.File(args.data, "r") as f:
            x, y = f["x"][:], f["y"][:]
    else:
        with np.load(args.data) as f:
            x, y = f["x"], f["y"]

    model = keras.saving.load_model(args.model)
    evaluate = model.evaluate(x, y, batch_size=args.batch_size, verbose=0)
    p = model.predict(x, batch_size=args.batch_size, verbose=0)
    eps = 1e-7
    p = np.clip(p / p.sum(axis=-1, keepdims=True), eps, 1 - eps)
    manual = float(np.mean(-np.sum(y * np.log(p), axis=-1)))

    copy = keras.saving.load_model(args.model)
    history = copy.fit(x, y, batch_size=args.batch_size, epochs=1, shuffle=False, verbose=0)
    fit_epoch = history.history["loss"][-1]
    print(f"evaluate {evaluate:.6f}  manual {manual:.6f}  fit_epoch {fit_epoch:.6f}")


if __name__ == "__main__":
    main()
