"""Turn measured figures into the gap decomposition and findings: one small rule per finding code.

Decomposition (all figures are batch-size-weighted epoch means; every row below a gap is a difference
of two figures shown in the report, or the remainder, so the rows add up to their parent exactly):
  fit_epoch - evaluate = (fit_epoch - train_mode_class_weighted)        weight update
                       + (train_mode_class_weighted - train_mode)       class weight (only with --class-weight)
                       + (train_mode - base)                             training-mode layers
  train_mode - base    = sum over families (train_mode_<family>_only - base) + interaction (the rest)
      families: dropout, batchnorm, noise, custom; interaction > rtol with >= 2 families => interaction,
      with fewer => unexplained
  evaluate - evaluate_float32                                            mixed precision (low-precision models)
  evaluate - manual    = regularization + residual                       residual > rtol => unexplained
base is `evaluate`, or `evaluate_probe_subset` when the training-mode figures ran on the first
--probe-samples samples; then the weight update is the remainder (an estimate) and has no figure pair.
Without --class-weight the class-weight row is absent and the weight update is fit_epoch - train_mode.
A cause is reported only when its layers exist and its measured size exceeds rtol * |evaluate|.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from losscheck.findings import Finding
from losscheck.report.text import plural
from losscheck.taxonomy import FAMILIES, STOCHASTIC_FAMILIES, family_figure

FAMILY_FIGURES = tuple((family, family_figure(family)) for family in FAMILIES)


@dataclass
class Evidence:
    """What the rules read: figure values and facts about the model and data."""

    figures: dict[str, float]
    rtol: float = 1e-4
    families: dict[str, list[str]] = field(default_factory=dict)  # dropout, batchnorm, frozen_batchnorm, noise, custom
    regularized_layers: list[str] = field(default_factory=list)
    class_weight: dict[int, float] | None = None
    sample_weight: dict[str, float] | None = None  # {"unweighted": .., "normalized": .., "weighted": ..}
    probe_samples: int | None = None
    fit_steps: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def scale(self) -> float:
        return max(abs(self.figures.get("evaluate", 0.0)), 1e-12)

    def moves(self, delta: float) -> bool:
        return abs(delta) > self.rtol * self.scale

    @property
    def base_name(self) -> str:
        """The all-inference figure on the same samples as the training-mode figures."""
        return "evaluate_probe_subset" if "evaluate_probe_subset" in self.figures else "evaluate"

    @property
    def base(self) -> float | None:
        return self.figures.get(self.base_name)

    @property
    def fit_reference(self) -> str:
        """The training-mode figure fit's first step measures (class-weighted when fit is)."""
        return "train_mode_class_weighted" if "train_mode_class_weighted" in self.figures else "train_mode"

    @cached_property
    def decomposition(self) -> list[dict[str, Any]]:
        return decompose(self)

    def row(self, name: str) -> dict[str, Any] | None:
        return next((r for r in self.decomposition if r["name"] == name), None)


def _row(name: str, label: str, value: float, depth: int, parent: str | None,
         between: tuple[str, str] | None = None) -> dict[str, Any]:
    return {"name": name, "label": label, "value": float(value), "depth": depth, "parent": parent,
            "between": list(between) if between else None}


def _diff(fig: dict[str, float], a: str, b: str, name: str, what: str, depth: int, parent: str | None):
    return _row(name, f"{a} - {b} ({what})", fig[a] - fig[b], depth, parent, (a, b))


def decompose(ev: Evidence) -> list[dict[str, Any]]:
    """The gap decomposition as rows {name, label, value, depth, parent, between}: `parent` is the name
    of the row it is part of (None at the top), `between` the two figures whose difference `value` is
    (None for a remainder or a figure). The rows under a parent add up to it exactly."""
    fig = ev.figures
    rows: list[dict[str, Any]] = []
    base_name, base = ev.base_name, ev.base
    has_train = "train_mode" in fig and base is not None
    layer_depth, layer_parent = 0, None
    if "fit_epoch" in fig and "evaluate" in fig:
        rows.append(_row("fit_epoch - evaluate", "fit_epoch - evaluate", fig["fit_epoch"] - fig["evaluate"], 0, None,
                         ("fit_epoch", "evaluate")))
        if has_train:
            layer_depth, layer_parent = 1, "fit_epoch - evaluate"
            ref = ev.fit_reference
            parts = []
            if ref != "train_mode":
                parts.append(_diff(fig, ref, "train_mode", "class weight", "class weight", 1, layer_parent))
            parts.append(_diff(fig, "train_mode", base_name, "training-mode layers", "training-mode layers", 1,
                               layer_parent))
            if base_name == "evaluate":
                update = _diff(fig, "fit_epoch", ref, "weight update", "weight update", 1, layer_parent)
            else:
                rest = rows[0]["value"] - sum(p["value"] for p in parts)
                update = _row("weight update", "weight update (estimated: the rest)", rest, 1, layer_parent)
            rows += [update, *parts]
    elif has_train:
        rows.append(_diff(fig, "train_mode", base_name, "training-mode layers", "training-mode layers", 0, None))
    if has_train and base is not None:
        total = fig["train_mode"] - base
        families = [(family, key) for family, key in FAMILY_FIGURES if key in fig]
        if families:
            parent = "training-mode layers"
            for family, key in families:
                rows.append(_diff(fig, key, base_name, family, family, layer_depth + 1, parent))
            rest = total - sum((fig[key] - base for _, key in families), 0.0)
            rows.append(_row("interaction", "interaction (not attributable to one family)" if len(families) > 1
                             else "other layers with a training behaviour", rest, layer_depth + 1, parent))
    if "evaluate_float32" in fig and "evaluate" in fig:
        rows.append(_diff(fig, "evaluate", "evaluate_float32", "mixed precision", "mixed precision", 0, None))
    if "manual" in fig and "evaluate" in fig:
        gap = fig["evaluate"] - fig["manual"]
        reg = fig.get("regularization", 0.0)
        rows += [_row("evaluate - manual", "evaluate - manual", gap, 0, None, ("evaluate", "manual")),
                 _row("regularization", "regularization (the figure)", reg, 1, "evaluate - manual"),
                 _row("residual", "residual", gap - reg, 1, "evaluate - manual")]
    return rows


def fmt(v: float) -> str:
    return f"{v:.6g}"


def _names(names: list[str], limit: int = 6) -> str:
    shown = ", ".join(names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


FAMILY_TEXT = {
    "dropout": (
        "dropout",
        "Dropout layers ({layers}) zero activations only in training, so the training-mode loss differs from "
        "evaluate's by {delta}",
        "Compare fit and evaluate losses only with this in mind; to see the effect without randomness, "
        "evaluate on the training data after training.",
    ),
    "batchnorm": (
        "batchnorm-batch-stats",
        "BatchNormalization layers ({layers}) normalize with the statistics of each batch in training and with "
        "their moving averages in inference; the two disagree on this data by {delta}",
        "If the data differs from what the moving statistics were built on, run a few epochs (or a pass with "
        "training=True) on representative data, or freeze the BN layers (trainable=False) when fine-tuning.",
    ),
    "noise": (
        "noise-layer",
        "Layers with a training-only behaviour ({layers}) change the training-mode loss by {delta}",
        "These layers (noise, augmentation) are active only in fit; evaluate sees the clean model.",
    ),
    "custom": (
        "noise-layer",
        "Layers whose call() takes `training` ({layers}) behave differently in training: with only them in "
        "training mode the loss differs from evaluate's by {delta}",
        "Such a layer (e.g. a sampling layer that draws in training and returns the mean otherwise) runs its "
        "training branch only in fit; evaluate and predict see its inference branch.",
    ),
}
FAMILY_LABEL = {"dropout": "Dropout", "batchnorm": "BatchNormalization", "noise": "noise/augmentation",
                "custom": "custom training-mode layers"}


def _spread(ev: Evidence, key: str) -> float | None:
    return (ev.extra.get("uncertainty") or {}).get(key)


def _pm(u: float | None) -> str:
    return "" if u is None else f" (± {u:.2g}, std over 3 random draws)"


def _overridden_note(ev: Evidence, layers: list[str]) -> str:
    """Why layers inside a nested model called with training=False still train in fit."""
    over: dict[str, str] = ev.extra.get("overridden") or {}
    mine = [name for name in layers if name in over]
    if not mine:
        return ""
    bases = sorted({over[name] for name in mine})
    which = ", ".join(repr(b) for b in bases)
    return (f" {_names(mine)} sit{'s' if len(mine) == 1 else ''} in nested model{'s' if len(bases) > 1 else ''} "
            f"{which}, called with training=False in the saved graph: Keras 3 ignores that flag when fit calls the "
            "model with training=True (tf.keras 2 honoured it), so in fit they run in training mode.")




def _subset(ev: Evidence) -> str:
    return f" Measured on the first {plural(ev.probe_samples, 'sample')}." if ev.probe_samples is not None else ""


def rule_family(family: str) -> Callable[[Evidence], list[Finding]]:
    def rule(ev: Evidence) -> list[Finding]:
        row = ev.row(family)
        layers = ev.families.get(family, [])
        if not layers or row is None:
            return []
        key, base = row["between"]
        delta = row["value"]
        if not ev.moves(delta):
            return []
        code, text, advice = FAMILY_TEXT[family]
        u = _spread(ev, key)
        msg = text.format(layers=_names(layers), delta=f"{delta:+.6g}") + (
            f" ({key} {fmt(ev.figures[key])} - {base} {fmt(ev.figures[base])}){_pm(u)}.")
        note = _overridden_note(ev, layers)
        msg += note + _subset(ev)
        if note and family == "batchnorm":
            advice = ("To keep these BN layers on their moving statistics in fit, freeze them (trainable=False on "
                      "the BN layers or the nested model): Keras 3 keeps frozen BN in inference mode, while "
                      "base(x, training=False) alone no longer does. " + advice)
        subject = layers[0] if len(layers) == 1 else None
        return [Finding(code, msg, magnitude=delta, subject=subject, between=(key, base), advice=advice,
                        uncertainty=u)]

    return rule


def rule_interaction(ev: Evidence) -> list[Finding]:
    """train_mode - base not accounted for by the families: interaction (>= 2 families) or unexplained."""
    row, total = ev.row("interaction"), ev.row("training-mode layers")
    if total is None:
        return []
    residual = row["value"] if row is not None else total["value"]
    present = [f for f in FAMILIES if ev.families.get(f)]
    if not ev.moves(residual):
        return []
    if len(present) >= 2 and row is not None:
        u = _spread(ev, "interaction")
        parts = {r["name"]: r["value"] for r in ev.decomposition if r["parent"] == "training-mode layers"}
        separately = ", ".join(f"{FAMILY_LABEL[f]} {parts[f]:+.6g}" for f in present if f in parts)
        together = sum(parts.get(f, 0.0) for f in present)
        msg = (f"All training-mode layers together change the loss by {total['value']:+.6g} (train_mode - "
               f"{ev.base_name}), but one family at a time by {together:+.6g} ({separately}): {residual:+.6g}"
               f"{_pm(u)} appears only when they are in training mode together.")
        if "batchnorm" in present:
            others = [FAMILY_LABEL[f] for f in present if f != "batchnorm"]
            msg += (f" With BatchNormalization on batch statistics, what {' and '.join(others)} do to the "
                    "activations also changes the statistics BN normalizes with, so the effects do not add up.")
        return [Finding("interaction", msg + _subset(ev), magnitude=residual, uncertainty=u,
                        advice="Read each family's size as its effect with the others in inference mode; the "
                               "training-mode gap is their sum plus this interaction.")]
    return [Finding("unexplained",
                    f"Training-mode loss differs from {ev.base_name} by {total['value']:+.6g}, of which "
                    f"{residual:+.6g} is not caused by any Dropout, BatchNormalization, noise or other layer whose "
                    "call() takes `training`." + _subset(ev),
                    magnitude=residual,
                    between=None if row is not None else tuple(total["between"]),
                    advice="A layer changes its behaviour in training without a `training` argument (e.g. it reads "
                           "a global flag); please report this with the model.")]


def rule_mixed_precision(ev: Evidence) -> list[Finding]:
    fig = ev.figures
    if "evaluate_float32" not in fig or "evaluate" not in fig:
        return []
    delta = fig["evaluate"] - fig["evaluate_float32"]
    if not ev.moves(delta):
        return []
    facts = ev.extra.get("low_precision") or {}
    policies = ", ".join(facts.get("policies") or ["float16/bfloat16"])
    layers = facts.get("layers") or []
    outs = facts.get("output_layers") or []
    where = f" including the output layer{'s' if len(outs) > 1 else ''} {_names(outs)}" if outs else ""
    rel = abs(delta) / ev.scale
    msg = (f"The model computes in {policies} ({len(layers)} layer{'s' if len(layers) != 1 else ''}{where}): "
           f"evaluate gives {fmt(fig['evaluate'])}, an in-memory copy with float32 dtype policies and the same "
           f"weights gives {fmt(fig['evaluate_float32'])} ({delta:+.6g}, {rel:.2%}). Keras computes the loss in "
           "float32, but on the low-precision outputs.")
    advice = ("Give the output layer (at least its final activation) dtype='float32', as the Keras mixed-precision "
              "guide advises, so the loss sees float32 outputs; what remains is the precision of the model itself.")
    return [Finding("mixed-precision", msg, magnitude=delta, subject=outs[0] if len(outs) == 1 else None,
                    between=("evaluate", "evaluate_float32"), advice=advice)]


def rule_weight_update(ev: Evidence) -> list[Finding]:
    fig = ev.figures
    row = ev.row("weight update")
    if row is None or not ev.moves(row["value"]):
        return []
    delta = row["value"]
    ref = ev.fit_reference
    random = next((ev.families[f] for f in STOCHASTIC_FAMILIES if ev.families.get(f)), None)
    if row["between"]:
        msg = (f"fit reports {fmt(fig['fit_epoch'])} (fit_epoch), the average of losses measured before each of "
               f"its {plural(ev.fit_steps, 'update')}; at the saved weights the same training-mode loss is {fmt(fig[ref])} "
               f"({ref}): the weights changed during the epoch, which moves fit's figure by {delta:+.6g}.")
    else:
        gap = fig["fit_epoch"] - fig["evaluate"]
        explained = fig[ref] - fig[ev.base_name]
        msg = (f"fit_epoch - evaluate is {gap:+.6g} on all samples; on the first "
               f"{plural(ev.probe_samples, 'sample')}, {ref} - {ev.base_name} ({fmt(fig[ref])} - {fmt(fig[ev.base_name])}) accounts for "
               f"{explained:+.6g}; the rest, {delta:+.6g}, is an estimate of how much the weight changes during the "
               f"epoch's {plural(ev.fit_steps, 'update')} move fit's figure (it also holds any difference between the subset "
               "and the whole data).")
    if random:
        msg += " With random layers this also includes the different random draws of fit."
    return [Finding("weight-update", msg, magnitude=delta, between=tuple(row["between"]) if row["between"] else None,
                    advice="Call evaluate on the training data after fit to compare like with like; fit's figure "
                           "is a running average over changing weights.")]


def rule_class_weight(ev: Evidence) -> list[Finding]:
    row = ev.row("class weight")
    if not ev.class_weight or row is None or not ev.moves(row["value"]):
        return []
    delta = row["value"]
    a, b = row["between"]
    return [Finding("class-weight",
                    f"class_weight {ev.class_weight} multiplies each sample's loss in fit only (divided by the sample "
                    f"count, not by the sum of weights); with every layer in training behaviour at the saved weights "
                    f"it changes the loss by {delta:+.6g} ({a} {fmt(ev.figures[a])} - {b} {fmt(ev.figures[b])})."
                    + _subset(ev),
                    magnitude=delta, between=(a, b),
                    advice="evaluate never applies class_weight; pass the same weights as sample_weight to evaluate "
                           "to compare.")]


def rule_sample_weight(ev: Evidence) -> list[Finding]:
    sw = ev.sample_weight
    if not sw:
        return []
    delta = sw["weighted"] - sw["unweighted"]
    if not ev.moves(delta):
        return []
    masked = bool(sw.get("masked"))
    if sw.get("per_element"):
        what = ("sample_weight holds one weight per loss element (e.g. per pixel): it multiplies each element's "
                "loss and Keras divides by the number of " + ("unmasked " if masked else "")
                + "loss elements (pixels or positions, not samples), not by the sum of weights")
        numpy = "sum(w*l)/(number of " + ("unmasked " if masked else "") + "elements)"
    elif masked:
        what = ("sample_weight multiplies each sample's loss elements and Keras divides by the number of unmasked "
                "elements, not by the sum of their weights")
        numpy = "sum(w*l*m)/sum(m)"
    else:
        what = ("sample_weight multiplies each sample's loss and Keras divides by the number of samples, not by "
                "the sum of weights")
        numpy = "sum(w*l)/N"
    over = " over the unmasked elements" if masked else ""
    return [Finding("sample-weight",
                    f"{what}: the data loss is {fmt(sw['weighted'])}, unweighted it would be "
                    f"{fmt(sw['unweighted'])} ({delta:+.6g}), normalized by the weights (sum(w*l)/sum(w){over}, per batch) "
                    f"{fmt(sw['normalized'])}.",
                    magnitude=delta,
                    advice=f"To reproduce Keras in numpy use {numpy} per batch; use reduction="
                           "'mean_with_sample_weight' if you want sum(w*l)/sum(w).")]


def rule_regularization(ev: Evidence) -> list[Finding]:
    reg = ev.figures.get("regularization")
    if reg is None or not ev.moves(reg):
        return []
    who = f" from {_names(ev.regularized_layers)}" if ev.regularized_layers else ""
    return [Finding("regularization",
                    f"Keras adds {fmt(reg)} of penalties{who} (weight regularizers, activity regularizers, add_loss) "
                    "to the loss it reports (the regularization figure, part of evaluate - manual); a numpy loss on "
                    "predict() does not include them.",
                    magnitude=reg,
                    subject=ev.regularized_layers[0] if len(ev.regularized_layers) == 1 else None,
                    advice="Add sum(model.losses) to your own computation, or compare with the data loss only.")]


def rule_unexplained_manual(ev: Evidence) -> list[Finding]:
    fig = ev.figures
    row = ev.row("residual")
    if row is None or not ev.moves(row["value"]):
        return []
    residual = row["value"]
    reg = fig.get("regularization", 0.0)
    return [Finding("unexplained",
                    f"evaluate ({fmt(fig['evaluate'])}) minus losscheck's own recomputation ({fmt(fig['manual'])}) "
                    f"minus the penalties ({fmt(reg)}) leaves {residual:+.6g}, and no known cause accounts for it.",
                    magnitude=residual,
                    advice="Please report this with the model: the loss may use semantics losscheck does not model.")]


#: Rules run in this order.
RULES: list[Callable[[Evidence], list[Finding]]] = [
    rule_weight_update,
    *(rule_family(family) for family in FAMILIES),
    rule_interaction,
    rule_mixed_precision,
    rule_class_weight,
    rule_regularization,
    rule_sample_weight,
    rule_unexplained_manual,
]


def attribute(ev: Evidence, rules: list[Callable[[Evidence], list[Finding]]] | None = None) -> list[Finding]:
    out: list[Finding] = []
    for rule in rules or RULES:
        out.extend(rule(ev))
    return out
