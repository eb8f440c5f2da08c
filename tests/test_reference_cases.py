"""The case builder of tests/test_reference_parity.py (no tests here): random small Keras models over
losses x reductions x weights x masks x ranks. A case is described by plain values (hypothesis draws
them) and built with real Keras; nothing here knows an expected loss value."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

#: kind -> (loss class name, function name, string alias, option sets to draw from)
LOSSES: dict[str, dict[str, Any]] = {
    "mse": {"cls": "MeanSquaredError", "fn": "mean_squared_error", "str": "mse", "target": "real"},
    "mae": {"cls": "MeanAbsoluteError", "fn": "mean_absolute_error", "str": "mae", "target": "real"},
    "mape": {"cls": "MeanAbsolutePercentageError", "fn": "mean_absolute_percentage_error", "str": "mape",
             "target": "real"},
    "msle": {"cls": "MeanSquaredLogarithmicError", "fn": "mean_squared_logarithmic_error", "str": "msle",
             "target": "positive"},
    # Keras 3.15 does not serialize Huber's delta nor CosineSimilarity's axis (a reloaded model uses the
    # defaults), so files carry only the defaults; test_reference_parity checks those options in memory.
    "huber": {"cls": "Huber", "fn": "huber", "str": "huber", "target": "real"},
    "log_cosh": {"cls": "LogCosh", "fn": "log_cosh", "str": "log_cosh", "target": "real"},
    "hinge": {"cls": "Hinge", "fn": "hinge", "str": "hinge", "target": "binary_or_signed"},
    "squared_hinge": {"cls": "SquaredHinge", "fn": "squared_hinge", "str": "squared_hinge",
                      "target": "binary_or_signed"},
    "categorical_hinge": {"cls": "CategoricalHinge", "fn": "categorical_hinge", "str": "categorical_hinge",
                          "target": "onehot"},
    "kld": {"cls": "KLDivergence", "fn": "kl_divergence", "str": "kld", "target": "distribution",
            "activation": ["softmax"]},
    "poisson": {"cls": "Poisson", "fn": "poisson", "str": "poisson", "target": "counts",
                "activation": ["softplus", "exponential"]},
    "cosine": {"cls": "CosineSimilarity", "fn": "cosine_similarity", "str": "cosine_similarity",
               "target": "real"},
    "bce": {"cls": "BinaryCrossentropy", "fn": "binary_crossentropy", "str": "binary_crossentropy",
            "target": "binary", "activation": ["sigmoid", "linear", "softmax"],
            "options": [{}, {"from_logits": True}, {"label_smoothing": 0.2},
                        {"from_logits": True, "label_smoothing": 0.1}]},
    "bfce": {"cls": "BinaryFocalCrossentropy", "fn": "binary_focal_crossentropy", "str": "binary_focal_crossentropy",
             "target": "binary", "activation": ["sigmoid", "linear"],
             "options": [{}, {"from_logits": True}, {"apply_class_balancing": True, "alpha": 0.4, "gamma": 1.5},
                         {"label_smoothing": 0.2, "gamma": 3.0}]},
    "cce": {"cls": "CategoricalCrossentropy", "fn": "categorical_crossentropy", "str": "categorical_crossentropy",
            "target": "onehot", "activation": ["softmax", "linear", "sigmoid"],
            "options": [{}, {"from_logits": True}, {"label_smoothing": 0.15}]},
    "cfce": {"cls": "CategoricalFocalCrossentropy", "fn": "categorical_focal_crossentropy",
             "str": "categorical_focal_crossentropy", "target": "onehot", "activation": ["softmax", "linear"],
             "options": [{}, {"from_logits": True}, {"alpha": 0.5, "gamma": 1.0, "label_smoothing": 0.1}]},
    "scce": {"cls": "SparseCategoricalCrossentropy", "fn": "sparse_categorical_crossentropy",
             "str": "sparse_categorical_crossentropy", "target": "sparse", "activation": ["softmax", "linear"],
             "options": [{}, {"from_logits": True}, {"ignore_class": 1}, {"ignore_class": 0, "from_logits": True}]},
    "gce": {"cls": "CategoricalGeneralizedCrossEntropy", "fn": "categorical_generalized_cross_entropy",
            "str": None, "target": "sparse_flat", "activation": ["softmax"], "options": [{}, {"q": 0.7}],
            "ranks": [2]},
    "dice": {"cls": "Dice", "fn": "dice", "str": "dice", "target": "binary", "activation": ["sigmoid"],
             "options": [{}, {"axis": "sample"}]},
    "tversky": {"cls": "Tversky", "fn": "tversky", "str": "tversky", "target": "binary", "activation": ["sigmoid"],
                "options": [{}, {"alpha": 0.7, "beta": 0.3}, {"axis": "sample"}]},
    "circle": {"cls": "Circle", "fn": "circle", "str": "circle", "target": "sparse_flat",
               "activation": ["unit"], "options": [{}, {"gamma": 10.0, "margin": 0.25}], "ranks": [2]},
    "ctc": {"cls": "CTC", "fn": "ctc", "str": "ctc", "target": "ctc", "activation": ["linear"], "ranks": [3]},
    "crossentropy": {"cls": None, "fn": None, "str": "crossentropy", "target": "auto",
                     "activation": ["softmax", "sigmoid"]},
}
REDUCTIONS = ["sum_over_batch_size", "sum", "mean", "mean_with_sample_weight", "none"]


@dataclass
class OutputCase:
    kind: str
    form: str  # "object" | "string" | "function"
    option_index: int
    reduction: str
    activation_index: int
    rank: int  # rank of the model output: 2 (B, C), 3 (B, T, C) or 4 (B, H, W, C)
    channels: int
    target_variant: int  # a few target layouts per kind (e.g. sparse (B,) vs (B,1))
    scale: float  # size of the final kernel: large values saturate sigmoid/softmax outputs


@dataclass
class Case:
    seed: int
    outputs: list[OutputCase]
    n: int
    batch_size: int
    mask: str  # "none" | "masking" | "embedding"
    weights: str  # "none" | "sample" | "column" | "full"
    loss_weights: list[float] | None
    regularizer: bool
    extra_output_without_loss: bool
    extras: int = 0  # bit flags: 1 Dropout, 2 BatchNormalization, 4 activity regularizer, 8 mixed_float16,
    # 16 dict loss / loss_weights
    notes: list[str] = field(default_factory=list)


def _target(kind: str, variant: int, shape: tuple[int, ...], rng: np.random.Generator):
    """y_true for an output of `shape` (no batch-free axes removed) and the shape the model outputs."""
    spec = LOSSES[kind]
    target = spec["target"]
    c = shape[-1]
    if target == "real":
        return rng.normal(size=shape).astype("float32") * 1.5 + 0.3
    if target == "positive":
        return np.abs(rng.normal(size=shape)).astype("float32") * 2
    if target == "counts":
        return rng.poisson(1.5, size=shape).astype("float32")
    if target == "binary_or_signed":
        y = rng.integers(0, 2, size=shape).astype("float32")
        return y if variant % 2 == 0 else 2 * y - 1
    if target == "binary":
        y = rng.integers(0, 2, size=shape).astype("float32")
        if variant % 3 == 2:
            y = rng.uniform(size=shape).astype("float32")  # soft labels
        return y
    if target in ("onehot", "distribution"):
        labels = rng.integers(0, c, size=shape[:-1])
        if target == "distribution":
            z = rng.normal(size=shape) * 2
            return (np.exp(z) / np.exp(z).sum(-1, keepdims=True)).astype("float32")
        return np.eye(c, dtype="float32")[labels]
    if target == "sparse":
        labels = rng.integers(0, c, size=shape[:-1])
        if variant % 3 == 1:
            return labels[..., None].astype("int32")
        if variant % 3 == 2:
            return labels.astype("float32")
        return labels.astype("int64")
    if target == "sparse_flat":
        return rng.integers(0, c if kind != "circle" else 3, size=shape[:1]).astype("int32")
    if target == "ctc":
        b, t = shape[0], shape[1]
        length = max(1, t // 3)
        y = rng.integers(1, c, size=(b, length))
        cut = rng.integers(0, length + 1, size=b)
        y[np.arange(length)[None, :] >= cut[:, None]] = 0
        return y.astype("int32")
    if target == "auto":
        if c == 1:
            return rng.integers(0, 2, size=shape).astype("float32")
        labels = rng.integers(0, c, size=shape[:-1])
        return labels.astype("int32") if variant % 2 == 0 else np.eye(c, dtype="float32")[labels]
    raise ValueError(target)


def make_loss(o: OutputCase, keras):
    spec = LOSSES[o.kind]
    options = dict((spec.get("options") or [{}])[o.option_index % len(spec.get("options") or [{}])])
    if options.get("axis") == "sample":
        options["axis"] = tuple(range(1, o.rank))
    form = o.form
    if spec["cls"] is None:
        form = "string"
    if form == "string" and spec["str"] is None:
        form = "function"
    if form == "function" and o.kind == "gce":
        form = "object"  # keras.losses.categorical_generalized_cross_entropy has no default q
    if form == "object":
        kw = dict(options)
        if o.reduction != "sum_over_batch_size":
            kw["reduction"] = o.reduction
        return getattr(keras.losses, spec["cls"])(**kw), f"{spec['cls']}({kw})"
    if form == "string":
        return spec["str"], spec["str"]
    return getattr(keras.losses, spec["fn"]), spec["fn"]


def build(case: Case):
    """(model compiled as the user would, x, y (list per output), sample_weight or None)."""
    import keras

    L = keras.layers
    rng = np.random.default_rng(case.seed)
    keras.utils.set_random_seed(case.seed)
    ranks = {o.rank for o in case.outputs}
    seq = 5
    feat = 4
    need_seq = any(r >= 3 for r in ranks) or case.mask != "none"
    if case.mask == "embedding":
        tokens = rng.integers(1, 7, size=(case.n, seq))
        lengths = rng.integers(0, seq + 1, size=case.n)
        tokens[np.arange(seq)[None, :] >= lengths[:, None]] = 0
        x = tokens.astype("int32")
        inp = keras.Input((seq,), dtype="int32", name="x")
        h = L.Embedding(8, feat, mask_zero=True, name="embed")(inp)
    else:
        shape = (seq, feat) if need_seq else (feat,)
        x = rng.normal(size=(case.n,) + shape).astype("float32")
        if case.mask == "masking":
            lengths = rng.integers(0, seq + 1, size=case.n)
            x[np.arange(seq)[None, :] >= lengths[:, None]] = 0.0
        inp = keras.Input(shape, name="x")
        h = L.Masking(0.0, name="masking")(inp) if case.mask == "masking" else inp
    reg = keras.regularizers.L2(0.01) if case.regularizer else None
    act_reg = keras.regularizers.L1(0.01) if case.extras & 4 else None
    if case.extras & 8:
        keras.config.set_dtype_policy("mixed_float16")
    try:
        return _build_rest(case, keras, L, rng, inp, h, x, need_seq, seq, reg, act_reg)
    finally:
        keras.config.set_dtype_policy("float32")


def _build_rest(case, keras, L, rng, inp, h, x, need_seq, seq, reg, act_reg):
    h = L.Dense(6, activation="tanh", kernel_regularizer=reg, activity_regularizer=act_reg, name="hidden")(h)
    if case.extras & 1:
        h = L.Dropout(0.5, name="dropout")(h)
    if case.extras & 2:
        h = L.BatchNormalization(name="bn")(h)
    outs, ys, losses, names = [], [], [], []
    for k, o in enumerate(case.outputs):
        spec = LOSSES[o.kind]
        acts = spec.get("activation") or ["linear"]
        act = acts[o.activation_index % len(acts)]
        hk = h
        if o.rank == 2 and need_seq:
            hk = L.GlobalAveragePooling1D(name=f"pool_{k}")(h)  # drops the mask
        if o.rank == 4:
            hk = L.Reshape((seq, 1, 6), name=f"img_{k}")(h) if need_seq else L.Reshape((2, 3, 1))(hk)
        init = keras.initializers.RandomNormal(stddev=o.scale)
        name = f"out_{k}"
        if act == "unit":
            z = L.Dense(o.channels, name=f"emb_{k}")(hk)
            out = L.UnitNormalization(name=name)(z)
        elif act == "softmax" and o.option_index % 2 == 1:
            z = L.Dense(o.channels, kernel_initializer=init, name=f"logits_{k}")(hk)
            out = L.Softmax(name=name)(z)  # a Softmax layer instead of a Dense activation
        else:
            out = L.Dense(o.channels, activation=act, kernel_initializer=init, name=name)(hk)
        outs.append(out)
        names.append(name)
        oshape = (case.n,) + tuple(out.shape[1:])
        y = _target(o.kind, o.target_variant, oshape, rng)
        if o.kind not in ("scce", "gce", "circle", "ctc", "crossentropy") and o.target_variant % 4 == 3 \
                and oshape[-1] == 1:
            y = y[..., 0]  # targets without the trailing 1: Keras squeezes y_pred (losing its logits)
        ys.append(y)
        loss, _ = make_loss(o, keras)
        losses.append(loss)
    if case.extra_output_without_loss:
        extra = L.Dense(2, name="aux")(h)
        outs.append(extra)
        names.append("aux")
        losses.append(None)
        ys.append(rng.normal(size=(case.n,) + tuple(extra.shape[1:])).astype("float32"))
    model = keras.Model(inp, outs if len(outs) > 1 else outs[0])
    lw = case.loss_weights
    if lw is not None and case.extra_output_without_loss:
        lw = list(lw) + [1.0]
    if len(outs) > 1 and case.extras & 16:  # dict forms, keyed by output name
        loss_arg: Any = dict(zip(names, losses, strict=True))
        lw_arg: Any = None if lw is None else dict(zip(names, lw, strict=True))
    elif len(outs) > 1:
        loss_arg, lw_arg = losses, lw
    else:
        loss_arg, lw_arg = losses[0], (lw[0] if lw else None)
    model.compile(optimizer="sgd", loss=loss_arg, loss_weights=lw_arg)
    sw = _weights(case, ys, rng)
    return model, x, ys, sw


def values_rank(o: OutputCase) -> int:
    """Rank of the per-element loss values Keras reduces (batch axis included); 0 for a scalar."""
    options = (LOSSES[o.kind].get("options") or [{}])
    opt = options[o.option_index % len(options)]
    if o.kind in ("dice", "tversky"):
        return 1 if opt.get("axis") == "sample" else 0
    if o.kind in ("circle", "ctc", "gce"):
        return 1
    return o.rank - 1


def _weights(case: Case, ys, rng):
    """A sample_weight of a shape Keras accepts for these outputs: (n,), (n, 1) or the values' shape."""
    if case.weights == "none":
        return None
    n = case.n
    ranks = [values_rank(o) for o in case.outputs]
    kind = case.weights
    if len(case.outputs) > 1:  # one array for every output: (n,) or (n, 1) only
        if max(ranks) >= 3:
            return None
        kind = "sample" if max(ranks) <= 1 else "column"
    elif ranks[0] >= 3:
        kind = "full"
    if kind == "full" and ranks[0] >= 2:
        o = case.outputs[0]
        shape = np.shape(ys[0])
        if o.kind == "scce":
            full = shape[:2]
        else:
            full = shape[:-1] if len(shape) == o.rank else shape
        return rng.uniform(0.0, 3.0, size=full).astype("float32")
    if kind == "column" or max(ranks) >= 2:
        return rng.uniform(0.0, 3.0, size=(n, 1)).astype("float32")
    return rng.uniform(0.0, 3.0, size=(n,)).astype("float32")


def save_inputs(model, x, ys, sw, folder):
    """model.keras + data.npz as the CLI reads them."""
    model.save(folder / "model.keras")
    arrays = {"x": x}
    if len(ys) == 1:
        arrays["y"] = ys[0]
    else:
        for name, y in zip(model.output_names, ys, strict=True):
            arrays[f"y_{name}"] = y
    if sw is not None:
        arrays["sample_weight"] = sw
    np.savez(folder / "data.npz", **arrays)
    return folder / "model.keras", folder / "data.npz"
