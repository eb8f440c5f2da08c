"""Build the benchmark scenario (seeded, a few seconds): python benchmarks/build_bench.py [--samples N ...]

A small conv net (32x32x3 inputs, 10 classes, ~300k parameters) with BatchNormalization after every
convolution, a Dropout head and an L2 kernel regularizer on the classifier, compiled with Adam and
categorical crossentropy, fitted briefly and saved with its optimizer state. Data: 2048 samples by
default (random images whose class shifts their mean, so the model learns something), written both as
`.npz` and as `.h5`; `--samples` writes extra `.h5` files of other sizes for the memory and linearity
checks.

Everything goes to benchmarks/scratch/ (gitignored); nothing here is committed.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

HERE = Path(__file__).resolve().parent
SCRATCH = HERE / "scratch"
SEED = 7
N_DEFAULT = 2048
BATCH = 64
CLASSES = 10


def make_data(n: int, seed: int = SEED):
    """n images (n, 32, 32, 3) float32 and one-hot labels (n, 10), deterministic in (n, seed)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    labels = rng.integers(0, CLASSES, size=n)
    x = rng.normal(0.0, 1.0, size=(n, 32, 32, 3)).astype("float32")
    x += (labels[:, None, None, None].astype("float32") - CLASSES / 2) * 0.1  # a learnable signal
    y = np.eye(CLASSES, dtype="float32")[labels]
    return x, y


def build_model():
    import keras
    from keras import layers

    def block(x, filters):
        x = layers.Conv2D(filters, 3, padding="same", use_bias=False)(x)
        x = layers.BatchNormalization()(x)
        return layers.Activation("relu")(x)

    inp = keras.Input((32, 32, 3), name="image")
    x = block(inp, 32)
    x = block(x, 32)
    x = layers.MaxPooling2D()(x)
    x = block(x, 64)
    x = block(x, 64)
    x = layers.MaxPooling2D()(x)
    x = block(x, 128)
    x = block(x, 128)
    x = layers.GlobalAveragePooling2D()(x)
    x = layers.Dense(128, activation="relu", kernel_regularizer=keras.regularizers.L2(1e-3))(x)
    x = layers.Dropout(0.3)(x)
    out = layers.Dense(CLASSES, activation="softmax", kernel_regularizer=keras.regularizers.L2(1e-3),
                       name="probs")(x)
    model = keras.Model(inp, out, name="bench_convnet")
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="categorical_crossentropy")
    return model


def write_h5(path: Path, n: int, seed: int = SEED, chunk: int = 4096) -> None:
    """x/y in an HDF5 file, written in chunks so large files never sit in memory whole."""
    import h5py

    with h5py.File(path, "w") as f:
        dx = f.create_dataset("x", shape=(n, 32, 32, 3), dtype="float32", chunks=(64, 32, 32, 3))
        dy = f.create_dataset("y", shape=(n, CLASSES), dtype="float32")
        for start in range(0, n, chunk):
            stop = min(start + chunk, n)
            x, y = make_data(stop - start, seed + start)
            dx[start:stop], dy[start:stop] = x, y


def build(samples: list[int] = (), out: Path = SCRATCH) -> Path:
    """Write out/model.keras, out/data.npz, out/data.h5 (2048 samples) and out/data_<n>.h5 for each
    extra size. Returns the folder (default benchmarks/scratch/, which ignores itself in git)."""
    import keras
    import numpy as np

    out.mkdir(parents=True, exist_ok=True)
    (out / ".gitignore").write_text("*\n")
    keras.utils.set_random_seed(SEED)
    model = build_model()
    x, y = make_data(N_DEFAULT)
    model.fit(x[:512], y[:512], batch_size=BATCH, epochs=2, shuffle=False, verbose=0)  # a short fit
    model.save(out / "model.keras")
    np.savez(out / "data.npz", x=x, y=y)
    write_h5(out / "data.h5", N_DEFAULT)
    for n in samples:
        write_h5(out / f"data_{n}.h5", n)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--samples", type=int, nargs="*", default=[], help="extra .h5 data sizes to write")
    ap.add_argument("--out", type=Path, default=SCRATCH, help="folder to write (default benchmarks/scratch)")
    args = ap.parse_args()
    out = build(args.samples, args.out)
    import keras

    model = keras.saving.load_model(out / "model.keras")
    print(f"wrote {out} ({model.count_params()} parameters)")


if __name__ == "__main__":
    main()
