"""Training vs validation: what compare measures with `--val VAL` / `--validation-split F` (the
data is read and cut in loading/validation.py).

Figures (validation data V, training data T, saved weights W, the fit probe's end weights W'):
  evaluate_val = evaluate(W, V)          what val_loss / evaluate on V reports at the saved weights
  fit_val      = evaluate(W', V)         what fit(T, validation_data=V) logs as val_loss after the probe's
                                         epoch (= fit(validation_split=F)'s val_loss with --validation-split)

Decomposition of fit's figure (fit_logged with a matched --history, else fit_epoch; written fit_epoch
here) against evaluate_val (differences of measured figures, the weight update the remainder with
--probe-samples; the terms add up exactly):
  fit_epoch - evaluate_val = weight update       } the rows under `fit_epoch - evaluate` of the compare
                           + class weight        } decomposition (losscheck.decomposition): fit_epoch -
                           + training-mode layers} train_mode[_class_weighted], train_mode_class_weighted
                                                   - train_mode, train_mode - evaluate
                           + regularization       penalties on T - penalties on V (weight penalties are the
                                                  same on both and cancel; activity penalties depend on data)
                           + generalization gap   data loss on T - data loss on V, same weights W
  generalization gap = sum over classes of (contribution on T - contribution on V), where a class's
  contribution is its share of the data loss (breakdown --per-class rows).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from losscheck.core.taxonomy import BUILTIN_FAMILIES
from losscheck.measurements import frozen_mapping
from losscheck.measurements.validation import SplitFacts, ValidationMeasurements

PROFILE_ROWS = 4096  # rows of targets read at a time when profiling the split
MAX_LABEL = 1000  # integer targets up to this are treated as class labels


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
        from losscheck.probes.breakdown.observers import ClassObserver

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
        from losscheck.probes.breakdown.rows import class_section

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
# Decomposition and measurements (the generalization-gap rule: rules/validation.py; the section:
# report/measured.py)
# ----------------------------------------------------------------------------------------------
def decompose(fig: dict[str, float], rows: list[dict[str, Any]], reg_val: float,
              fit: str = "fit_epoch") -> dict[str, float]:
    """`fit` - evaluate_val split into its causes (see the module docstring), reusing the rows of the
    compare decomposition under `<fit> - evaluate` (weight update, class weight, training-mode layers);
    empty without `fit`."""
    if fit not in fig or "evaluate_val" not in fig:
        return {}
    evaluate, ev_val = fig["evaluate"], fig["evaluate_val"]
    below = {r["name"]: r["value"] for r in rows if r.get("parent") == f"{fit} - evaluate"}
    if not below:
        below = {"weight update": fig[fit] - evaluate}
    out = {"weight update": 0.0, "training-mode layers": 0.0, "class weight": 0.0}
    out.update(below)
    reg_train = fig.get("regularization", 0.0)
    out["regularization"] = reg_train - reg_val
    out["generalization gap"] = (evaluate - reg_train) - (ev_val - reg_val)
    return out


def validation_measurements(figures: dict[str, float], gaps, fam, data, val, split_at: int | None, cfg, inf,
                            inf_val, classes_train, classes_val) -> ValidationMeasurements:
    """What the validation rule and section read. `inf`/`inf_val`: the inference passes on the training
    and validation data; `classes_*`: their SafeClassObservers; `gaps`: the compare GapMeasurements
    (its decomposition rows under `fit_epoch - evaluate` are reused)."""
    parts = decompose(figures, list(gaps.decomposition), inf_val.regularization, gaps.fit_figure)
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
        layer_names=tuple(n for f in BUILTIN_FAMILIES for n in fam.names(f)), fit=gaps.fit_figure)
