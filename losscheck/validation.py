"""Training vs validation: `--val VAL` / `--validation-split F`.

Figures (validation data V, training data T, saved weights W, the fit probe's end weights W'):
  evaluate_val = evaluate(W, V)          what val_loss / evaluate on V reports at the saved weights
  fit_val      = evaluate(W', V)         what fit(T, validation_data=V) logs as val_loss after the probe's
                                         epoch (= fit(validation_split=F)'s val_loss with --validation-split)

Decomposition (differences of measured figures, the weight update the remainder with --probe-samples;
the terms add up exactly):
  fit_epoch - evaluate_val = weight update       } the rows under `fit_epoch - evaluate` of the compare
                           + class weight        } decomposition (losscheck.decomposition): fit_epoch -
                           + training-mode layers} train_mode[_class_weighted], train_mode_class_weighted
                                                   - train_mode, train_mode - evaluate
                           + regularization       penalties on T - penalties on V (weight penalties are the
                                                  same on both and cancel; activity penalties depend on data)
                           + generalization gap   data loss on T - data loss on V, same weights W
  generalization gap = sum over classes of (contribution on T - contribution on V), where a class's
  contribution is its share of the data loss (breakdown --per-class rows).

--validation-split F reproduces Keras (trainers/data_adapters/array_slicing.train_validation_split):
split_at = floor(n * (1 - F)); T = rows [0, split_at), V = rows [split_at, n), before any shuffling.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np

from losscheck.core.errors import UsageError
from losscheck.core.taxonomy import BUILTIN_FAMILIES
from losscheck.measurements import frozen_mapping
from losscheck.measurements.validation import SplitFacts, ValidationMeasurements

PROFILE_ROWS = 4096  # rows of targets read at a time when profiling the split
MAX_LABEL = 1000  # integer targets up to this are treated as class labels


# ----------------------------------------------------------------------------------------------
# Splitting
# ----------------------------------------------------------------------------------------------
def split_index(n: int, fraction: float) -> int:
    """Keras's split point: floor(n * (1 - fraction)); both parts must be non-empty."""
    from losscheck.preflight import check_validation

    check_validation(None, fraction)
    at = int(math.floor(n * (1.0 - fraction)))
    if at == 0 or at == n:
        raise UsageError(f"--validation-split {fraction}: the data has {n} samples, too few to split into a "
                         "training and a validation part (Keras raises ValueError too); use a larger fraction "
                         "or more data")
    return at


class RowView:
    """Rows [start, stop) of an array or h5py dataset, sliced lazily (h5 rows are read only on access)."""

    def __init__(self, base: Any, start: int, stop: int) -> None:
        self.base, self.start, self.stop = base, start, stop
        self.shape = (stop - start, *tuple(base.shape[1:]))
        self.dtype = base.dtype
        self.ndim = len(self.shape)

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, key: Any) -> Any:
        if isinstance(key, slice):
            a, b, step = key.indices(self.shape[0])
            if step != 1:
                raise IndexError("RowView supports contiguous slices only")
            return self.base[self.start + a:self.start + max(a, b)]
        if isinstance(key, (int, np.integer)):
            i = int(key) + (self.shape[0] if key < 0 else 0)
            return self.base[self.start + i]
        raise IndexError("RowView supports integer and slice indexing only")

    def __array__(self, dtype=None, copy=None):
        a = np.asarray(self.base[self.start:self.stop])
        return a if dtype is None else a.astype(dtype)


def _rows(a: Any, start: int, stop: int) -> Any:
    if a is None:
        return None
    return a[start:stop] if isinstance(a, np.ndarray) else RowView(a, start, stop)


def split_dataset(data, fraction: float):
    """(training part, validation part) of a Dataset, as Keras's validation_split cuts it."""
    at = split_index(data.n, fraction)
    n = data.n

    def part(start: int, stop: int, handle: Any):
        return dataclasses.replace(
            data, x=[_rows(a, start, stop) for a in data.x], y=[_rows(a, start, stop) for a in data.y],
            sample_weight=_rows(data.sample_weight, start, stop), _handle=handle)

    return part(0, at, data._handle), part(at, n, None), at


def validation_inputs(cfg, loaded, data, validation_data, input_names: list[str], progress):
    """(training data, validation data, split_at or None) for compare: --validation-split cuts DATA,
    --val loads a file, `validation_data` is an already loaded Dataset; the Python API's inputs
    (cfg.inputs) load their own `validation_data=` (arrays, a pipeline, a file) against the model."""
    if cfg.validation_split is not None:
        from losscheck.preflight import check_validation

        check_validation(validation_data if validation_data is not None else cfg.val_path, cfg.validation_split)
        if getattr(data, "pipeline", False):
            raise UsageError("--validation-split needs array data (an .npz or .h5 file), as fit's validation_split "
                             "does (Keras raises ValueError for datasets and generators); pass --val instead")
        return split_dataset(data, cfg.validation_split)
    if validation_data is not None:
        return data, validation_data, None
    from losscheck.loading.inputs import with_data_notes

    if getattr(cfg.inputs, "validation", None) is not None:
        progress(f"reading {cfg.val_path}")
        return data, with_data_notes(loaded, cfg.inputs.load_validation(loaded)), None
    from losscheck.loading.data import load_data

    progress(f"reading {cfg.val_path}")
    return data, with_data_notes(loaded, load_data(cfg.val_path, input_names, loaded.output_names, model=loaded)), None


# ----------------------------------------------------------------------------------------------
# How the two parts differ
# ----------------------------------------------------------------------------------------------
def target_profile(y: Any) -> dict[str, Any]:
    """Range of one target array and, when it holds class labels (integers, or one-hot rows), the
    share of each class. Read in blocks of PROFILE_ROWS rows."""
    n = int(y.shape[0])
    lo, hi, total, count = math.inf, -math.inf, 0.0, 0
    counts: np.ndarray | None = np.zeros(0, np.int64)
    for start in range(0, n, PROFILE_ROWS):
        block = np.asarray(y[start:start + PROFILE_ROWS])
        if block.size == 0:
            continue
        f = block.astype(np.float64)
        finite = f[np.isfinite(f)]
        if finite.size:
            lo, hi = min(lo, float(finite.min())), max(hi, float(finite.max()))
            total += float(finite.sum())
            count += int(finite.size)
        if counts is None:
            continue
        if block.ndim >= 2 and block.shape[-1] > 1 and np.all((f == 0) | (f == 1)) and np.all(f.sum(-1) == 1):
            labels = np.argmax(f, axis=-1).reshape(-1)
        elif finite.size == f.size and np.all(f == np.round(f)) and f.min() >= 0 and f.max() <= MAX_LABEL:
            labels = f.reshape(-1).astype(np.int64)
        else:
            counts = None
            continue
        c = np.bincount(labels)
        if c.size > counts.size:
            counts = np.pad(counts, (0, c.size - counts.size))
        counts[: c.size] += c
    out: dict[str, Any] = {"min": lo if count else None, "max": hi if count else None,
                           "mean": total / count if count else None}
    if counts is not None and counts.sum():
        out["classes"] = {str(k): float(v / counts.sum()) for k, v in enumerate(counts) if v}
    return out


def split_profile(train, val) -> tuple[dict[str, Any], list[str]]:
    """Per output: the target profile of each part, and sentences on how they differ."""
    profiles: dict[str, Any] = {}
    lines: list[str] = []
    for i, name in enumerate(train.output_names):
        t, v = target_profile(train.y[i]), target_profile(val.y[i])
        profiles[name] = {"train": t, "validation": v}
        label = "" if len(train.output_names) == 1 else f"output {name}: "
        if "classes" in t and "classes" in v:
            keys = sorted(set(t["classes"]) | set(v["classes"]), key=int)
            diffs = {k: v["classes"].get(k, 0.0) - t["classes"].get(k, 0.0) for k in keys}
            worst = max(keys, key=lambda k: abs(diffs[k]))
            if len(keys) <= 6:
                shares = ", ".join(f"class {k} {t['classes'].get(k, 0.0):.0%} vs {v['classes'].get(k, 0.0):.0%}"
                                   for k in keys)
            else:
                shares = (f"most different: class {worst} {t['classes'].get(worst, 0.0):.0%} vs "
                          f"{v['classes'].get(worst, 0.0):.0%}")
            lines.append(f"{label}label balance training vs validation part: {shares}")
        elif t["min"] is not None and v["min"] is not None:
            outside = v["min"] < t["min"] or v["max"] > t["max"]
            lines.append(f"{label}target range training part [{t['min']:.4g}, {t['max']:.4g}] (mean {t['mean']:.4g}), "
                         f"validation part [{v['min']:.4g}, {v['max']:.4g}] (mean {v['mean']:.4g})"
                         + ("; the validation part goes outside the training range" if outside else ""))
    return profiles, lines


# ----------------------------------------------------------------------------------------------
# Per-class observers that never abort the compare run
# ----------------------------------------------------------------------------------------------
class SafeClassObserver:
    """breakdown's ClassObserver; a loss it cannot split per class just disables it (compare goes on)."""

    def __init__(self, prober, n: int) -> None:
        from losscheck.breakdown.observers import ClassObserver

        self.obs: Any = ClassObserver(prober, n)
        self.failed: str | None = None

    def __call__(self, b) -> None:
        if self.failed is not None:
            return
        try:
            self.obs(b)
        except Exception as exc:  # noqa: BLE001 - not decomposable: no per-class rows, never a fake
            self.failed = str(exc)

    def rows(self, inf) -> list[dict[str, Any]] | None:
        if self.failed is not None or inf.manual is None:
            return None
        from losscheck.breakdown.results import class_section

        try:
            return class_section(self.obs, inf)["per_class"]
        except Exception:  # noqa: BLE001 - no per-class rows when the observer cannot split the loss
            return None


def class_gap(train_rows, val_rows) -> list[dict[str, Any]]:
    """Per (output, class): contribution on T minus contribution on V; rows sum to the data-loss gap."""
    if not train_rows or not val_rows:
        return []
    t = {(r["output"], str(r["class"])): r for r in train_rows}
    v = {(r["output"], str(r["class"])): r for r in val_rows}
    keys = list(dict.fromkeys(list(t) + list(v)))
    if len(keys) < 2 or any(k[1] == "all" for k in keys):
        return []
    rows = []
    for key in keys:
        a, b = t.get(key, {}), v.get(key, {})
        rows.append({"output": key[0], "class": key[1],
                     "loss_train": a.get("loss"), "loss_val": b.get("loss"),
                     "contribution_train": a.get("contribution", 0.0), "contribution_val": b.get("contribution", 0.0),
                     "gap": a.get("contribution", 0.0) - b.get("contribution", 0.0)})
    rows.sort(key=lambda r: -abs(r["gap"]))
    return rows


# ----------------------------------------------------------------------------------------------
# Decomposition, sentence, measurements and section (the generalization-gap rule: rules/validation.py)
# ----------------------------------------------------------------------------------------------
def decompose(fig: dict[str, float], rows: list[dict[str, Any]], reg_val: float) -> dict[str, float]:
    """fit_epoch - evaluate_val split into its causes (see the module docstring), reusing the rows of
    the compare decomposition under `fit_epoch - evaluate` (weight update, class weight, training-mode
    layers); empty without fit_epoch."""
    if "fit_epoch" not in fig or "evaluate_val" not in fig:
        return {}
    evaluate, ev_val = fig["evaluate"], fig["evaluate_val"]
    below = {r["name"]: r["value"] for r in rows if r.get("parent") == "fit_epoch - evaluate"}
    if not below:
        below = {"weight update": fig["fit_epoch"] - evaluate}
    out = {"weight update": 0.0, "training-mode layers": 0.0, "class weight": 0.0}
    out.update(below)
    reg_train = fig.get("regularization", 0.0)
    out["regularization"] = reg_train - reg_val
    out["generalization gap"] = (evaluate - reg_train) - (ev_val - reg_val)
    return out


def sentence(fig: dict[str, float], parts: dict[str, float], layer_names: list[str]) -> str | None:
    """One sentence: why val_loss (evaluate_val) is below fit's loss, each cause with what it adds."""
    if not parts or not fig["evaluate_val"] < fig["fit_epoch"]:
        return None
    labels = {
        "weight update": "the weight update during fit's epoch",
        "training-mode layers": "training-mode layers" + (f" ({', '.join(layer_names[:4])})" if layer_names else ""),
        "class weight": "class_weight (fit only)",
        "regularization": "penalties that differ between the two sets (activity regularizers)",
        "generalization gap": "the generalization gap (evaluate - evaluate_val, same weights)",
    }
    gap = fig["fit_epoch"] - fig["evaluate_val"]
    scale = max(abs(gap), 1e-12)
    up = sorted(((k, v) for k, v in parts.items() if v > 1e-4 * scale), key=lambda kv: -kv[1])
    down = sorted(((k, v) for k, v in parts.items() if v < -1e-4 * scale), key=lambda kv: kv[1])
    text = (f"val_loss (evaluate_val {fig['evaluate_val']:.6g}) is lower than fit's loss (fit_epoch "
            f"{fig['fit_epoch']:.6g}) by {gap:.6g} because of "
            + ", ".join(f"{labels[k]} ({v:+.4g})" for k, v in up))
    if down:
        text += ", partly offset by " + ", ".join(f"{labels[k]} ({v:+.4g})" for k, v in down)
    return text + "."


def validation_measurements(figures: dict[str, float], gaps, fam, data, val, split_at: int | None, cfg, inf,
                            inf_val, classes_train, classes_val) -> ValidationMeasurements:
    """What the validation rule and section read. `inf`/`inf_val`: the inference passes on the training
    and validation data; `classes_*`: their SafeClassObservers; `gaps`: the compare GapMeasurements
    (its decomposition rows under `fit_epoch - evaluate` are reused)."""
    parts = decompose(figures, list(gaps.decomposition), inf_val.regularization)
    classes = class_gap(classes_train.rows(inf) if classes_train else None,
                        classes_val.rows(inf_val) if classes_val else None)
    split = None
    if split_at is not None:
        profiles, lines = split_profile(data, val)
        split = SplitFacts(cfg.validation_split, split_at, data.n, val.n, frozen_mapping(profiles), tuple(lines))
    return ValidationMeasurements(
        samples=val.n, regularization=float(inf_val.regularization), parts=frozen_mapping(parts),
        per_class_gap=tuple(frozen_mapping(r) for r in classes), split=split,
        training_mode_samples=gaps.probe_samples,
        layer_names=tuple(n for f in BUILTIN_FAMILIES for n in fam.names(f)))


def validation_section(figures: dict[str, float], v: ValidationMeasurements) -> tuple[dict[str, Any], list[str]]:
    """The `validation` report section (decomposition of fit_epoch - evaluate_val, per-class gap, split
    profile) and its notes."""
    notes: list[str] = []
    section: dict[str, Any] = {"samples": v.samples, "regularization": v.regularization}
    sp = v.split
    if sp is not None:
        section["split"] = {"fraction": sp.fraction, "split_at": sp.split_at, "training_samples": sp.training_samples,
                            "validation_samples": sp.validation_samples, "targets": dict(sp.targets)}
        notes.append(f"--validation-split {sp.fraction}: as Keras, the training part is rows 0..{sp.split_at - 1} "
                     f"and the validation part rows {sp.split_at}..{sp.split_at + v.samples - 1}, taken before any "
                     "shuffling (not a random sample)" + ("; " + "; ".join(sp.lines) if sp.lines else ""))
    parts = dict(v.parts)
    if parts:
        section["decomposition"] = {"fit_epoch - evaluate_val": figures["fit_epoch"] - figures["evaluate_val"],
                                    **parts}
        if v.training_mode_samples is not None:
            section["training_mode_samples"] = v.training_mode_samples  # weight update and layers estimated on them
    if v.per_class_gap:
        section["per_class_gap"] = [dict(r) for r in v.per_class_gap]
    text = sentence(figures, parts, list(v.layer_names))
    if text:
        section["why_val_lower"] = text
        notes.append(text)
    return section, notes
