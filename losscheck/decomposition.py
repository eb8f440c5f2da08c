"""Where the gaps come from: the figures' decomposition into rows (pure, no TensorFlow).

All figures are batch-size-weighted epoch means; every row below a gap is a difference of two figures
shown in the report, or the remainder, so the rows add up to their parent exactly:
  fit - evaluate       = (fit - train_mode_class_weighted)                weight update
                       + (train_mode_class_weighted - train_mode)       class weight (only with --class-weight)
                       + (train_mode - base)                             training-mode layers
  train_mode - base    = sum over families (train_mode_<family>_only - base) + interaction (the rest)
      families: dropout, batchnorm, noise, custom
  evaluate - evaluate_float32                                            mixed precision (low-precision models)
  evaluate - manual    = regularization + residual
`fit` is fit's figure: fit_logged (the callback, and compare with --history: the epoch's logged loss,
where the weight update is the rest: whatever else differs between the user's run and the probes lands
there too) or fit_epoch (compare). Compare with both gets a second tree, for fit_epoch:
  fit_epoch - evaluate = (fit_epoch - ref) + (ref - base)     its weight update, training mode as above
base is `evaluate`, or
`evaluate_probe_subset` when the training-mode figures ran on the first --probe-samples samples; then
the weight update is the remainder (an estimate) and has no figure pair. Without --class-weight the
class-weight row is absent and the weight update is fit - train_mode.

A row is a read-only mapping {name, label, value, depth, parent, between}: `parent` is the name of the
row it is part of (None at the top), `between` the two figures whose difference `value` is (None for a
remainder or a figure).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from losscheck.core.taxonomy import FAMILIES, family_figure

#: (family, its train_mode_<family>_only figure), in decomposition order
FAMILY_FIGURES = tuple((family, family_figure(family)) for family in FAMILIES)

Row = Mapping[str, Any]


def base_name(figures: Mapping[str, float]) -> str:
    """The all-inference figure on the same samples as the training-mode figures."""
    return "evaluate_probe_subset" if "evaluate_probe_subset" in figures else "evaluate"


def fit_reference(figures: Mapping[str, float]) -> str:
    """The training-mode figure fit's first step measures (class-weighted when fit is)."""
    return "train_mode_class_weighted" if "train_mode_class_weighted" in figures else "train_mode"


def _row(name: str, label: str, value: float, depth: int, parent: str | None,
         between: tuple[str, str] | None = None) -> Row:
    return MappingProxyType({"name": name, "label": label, "value": float(value), "depth": depth, "parent": parent,
                             "between": between})


def _diff(fig: Mapping[str, float], a: str, b: str, name: str, depth: int, parent: str | None) -> Row:
    return _row(name, f"{a} - {b} ({name})", fig[a] - fig[b], depth, parent, (a, b))


def _second_fit(fig: Mapping[str, float], fit: str) -> list[Row]:
    """The tree of a second fit figure (fit_epoch beside fit_logged): its weight update and the training
    mode of the first tree (see the module docstring)."""
    ref, base = fit_reference(fig), base_name(fig)
    top = f"{fit} - evaluate"
    rows = [_row(top, top, fig[fit] - fig["evaluate"], 0, None, (fit, "evaluate"))]
    mode = _row(f"{fit}: training mode", f"{ref} - {base} (training mode, as above)", fig[ref] - fig[base], 1, top,
                (ref, base))
    if base == "evaluate":
        update = _row(f"{fit}: weight update", f"{fit} - {ref} (weight update of its epoch)", fig[fit] - fig[ref],
                      1, top, (fit, ref))
    else:
        update = _row(f"{fit}: weight update", "weight update of its epoch (estimated: the rest)",
                      rows[0]["value"] - mode["value"], 1, top)
    return rows + [update, mode]


def decompose(figures: Mapping[str, float], fit: str = "fit_epoch", also: tuple[str, ...] = ()) -> tuple[Row, ...]:
    """The gap decomposition of `figures` as rows (see the module docstring); `fit` names fit's figure,
    `also` further fit figures that get a tree of their own. The rows under a parent add up to it
    exactly."""
    fig = figures
    rows: list[Row] = []
    base = base_name(fig)
    has_train = "train_mode" in fig and base in fig
    layer_depth, layer_parent = 0, None
    if fit in fig and "evaluate" in fig:
        top = f"{fit} - evaluate"
        rows.append(_row(top, top, fig[fit] - fig["evaluate"], 0, None, (fit, "evaluate")))
        if has_train:
            layer_depth, layer_parent = 1, top
            ref = fit_reference(fig)
            parts = []
            if ref != "train_mode":
                parts.append(_diff(fig, ref, "train_mode", "class weight", 1, layer_parent))
            parts.append(_diff(fig, "train_mode", base, "training-mode layers", 1, layer_parent))
            if base == "evaluate":
                update = _diff(fig, fit, ref, "weight update", 1, layer_parent)
                if fit == "fit_logged":
                    update = _row("weight update", f"{fit} - {ref} (weight change during the epoch; the rest)",
                                  update["value"], 1, layer_parent, (fit, ref))
            else:
                rest = rows[0]["value"] - sum(p["value"] for p in parts)
                update = _row("weight update", "weight update (estimated: the rest)", rest, 1, layer_parent)
            rows += [update, *parts]
    elif has_train:
        rows.append(_diff(fig, "train_mode", base, "training-mode layers", 0, None))
    if has_train:
        total = fig["train_mode"] - fig[base]
        families = [(family, key) for family, key in FAMILY_FIGURES if key in fig]
        if families:
            parent = "training-mode layers"
            for family, key in families:
                rows.append(_diff(fig, key, base, family, layer_depth + 1, parent))
            rest = total - sum((fig[key] - fig[base] for _, key in families), 0.0)
            rows.append(_row("interaction", "interaction (not attributable to one family)" if len(families) > 1
                             else "other layers with a training behaviour", rest, layer_depth + 1, parent))
    for other in also:
        if other in fig and other != fit and "evaluate" in fig:
            if has_train and fit in fig:
                rows += _second_fit(fig, other)
            else:
                top = f"{other} - evaluate"
                rows.append(_row(top, top, fig[other] - fig["evaluate"], 0, None, (other, "evaluate")))
    if "evaluate_float32" in fig and "evaluate" in fig:
        rows.append(_diff(fig, "evaluate", "evaluate_float32", "mixed precision", 0, None))
    if "manual" in fig and "evaluate" in fig:
        gap = fig["evaluate"] - fig["manual"]
        reg = fig.get("regularization", 0.0)
        rows += [_row("evaluate - manual", "evaluate - manual", gap, 0, None, ("evaluate", "manual")),
                 _row("regularization", "regularization (the figure)", reg, 1, "evaluate - manual"),
                 _row("residual", "residual", gap - reg, 1, "evaluate - manual")]
    return tuple(rows)


def finite_rows(rows: tuple[Row, ...] | list[Row]) -> list[dict[str, Any]]:
    """The decomposition rows for the report (plain dicts, `between` a list), without any top-level gap
    (and its rows below) that holds a non-finite value: the non-finite finding says where NaN/Inf came
    from."""
    groups: list[list[Row]] = []
    for row in rows:
        if row["depth"] == 0:
            groups.append([])
        if groups:
            groups[-1].append(row)
    return [{**row, "between": list(row["between"]) if row["between"] else None}
            for group in groups if all(math.isfinite(r["value"]) for r in group) for row in group]
