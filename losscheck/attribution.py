"""Turn measured figures into findings: one small rule per finding code.

Decomposition (all figures are batch-size-weighted epoch means):
  fit_epoch - evaluate = (fit_epoch - train_mode)            weight-update (weights change in the epoch)
                       + (train_mode - base)                 training-mode layers
                       + (base - evaluate)                   class-weight (base = class-weighted evaluate)
  train_mode - base    = dropout + batchnorm + noise + interaction,
      family effect    = train_mode_<family>_only - base
  evaluate - manual    = regularization + residual           residual > rtol => unexplained
A cause is reported only when its layers exist and its measured size exceeds rtol * |evaluate|.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from losscheck.findings import Finding
from losscheck.report.text import plural


@dataclass
class Evidence:
    """What the rules read: figure values and facts about the model and data."""

    figures: dict[str, float]
    rtol: float = 1e-4
    families: dict[str, list[str]] = field(default_factory=dict)  # dropout, batchnorm, frozen_batchnorm, noise
    regularized_layers: list[str] = field(default_factory=list)
    class_weight: dict[int, float] | None = None
    sample_weight: dict[str, float] | None = None  # {"unweighted": .., "normalized": .., "weighted": ..}
    probe_samples: int | None = None
    subset_evaluate: float | None = None  # evaluate on the probe subset (probe_samples)
    subset_evaluate_cw: float | None = None
    fit_steps: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def scale(self) -> float:
        return max(abs(self.figures.get("evaluate", 0.0)), 1e-12)

    def moves(self, delta: float) -> bool:
        return abs(delta) > self.rtol * self.scale

    @property
    def base(self) -> float | None:
        """The all-inference loss the training-mode passes compare against (same samples, same weights)."""
        if self.probe_samples is not None:
            return self.subset_evaluate_cw if self.class_weight else self.subset_evaluate
        if self.class_weight:
            return self.figures.get("evaluate_class_weighted")
        return self.figures.get("evaluate")


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
}


def rule_family(family: str) -> Callable[[Evidence], list[Finding]]:
    def rule(ev: Evidence) -> list[Finding]:
        key = f"train_mode_{family}_only" if family != "batchnorm" else "train_mode_batchnorm_only"
        layers = ev.families.get(family, [])
        if not layers or key not in ev.figures or ev.base is None:
            return []
        delta = ev.figures[key] - ev.base
        if not ev.moves(delta):
            return []
        code, text, advice = FAMILY_TEXT[family]
        msg = text.format(layers=_names(layers), delta=f"{delta:+.6g}") + "."
        if family == "batchnorm" and ev.families.get("frozen_batchnorm"):
            msg += (f" Frozen BN layers ({_names(ev.families['frozen_batchnorm'])}) stay on moving statistics "
                    "in fit (Keras 3) and are not part of this.")
        if ev.probe_samples is not None:
            msg += f" Measured on the first {plural(ev.probe_samples, 'sample')}."
        subject = layers[0] if len(layers) == 1 else None
        return [Finding(code, msg, magnitude=delta, subject=subject, between=(key, "evaluate"), advice=advice)]

    return rule


def rule_interaction(ev: Evidence) -> list[Finding]:
    """train_mode - base not accounted for by the families: interaction (>= 2 families) or unexplained."""
    if "train_mode" not in ev.figures or ev.base is None:
        return []
    total = ev.figures["train_mode"] - ev.base
    parts = [ev.figures[k] - ev.base for k in ("train_mode_dropout_only", "train_mode_batchnorm_only",
                                                 "train_mode_noise_only") if k in ev.figures]
    residual = total - sum(parts)
    ev.extra["interaction"] = residual
    present = sum(1 for f in ("dropout", "batchnorm", "noise") if ev.families.get(f))
    if present >= 2 or not ev.moves(residual):
        return []
    return [Finding("unexplained",
                    f"Training-mode loss differs from evaluate by {total:+.6g}, of which {residual:+.6g} is not "
                    "caused by any Dropout, BatchNormalization or noise layer losscheck knows.",
                    magnitude=residual, between=("train_mode", "evaluate"),
                    advice="A custom layer probably behaves differently when training=True; check layers whose "
                           "call() takes a `training` argument.")]


def rule_weight_update(ev: Evidence) -> list[Finding]:
    fig = ev.figures
    if "fit_epoch" not in fig or "train_mode" not in fig:
        return []
    if ev.probe_samples is not None and ev.base is not None:
        # train_mode is on a subset: compare the effects, not the values
        delta = (fig["fit_epoch"] - fig.get("evaluate_class_weighted", fig["evaluate"])) - (fig["train_mode"] - ev.base)
        approx = f" (estimated: training-mode passes ran on the first {plural(ev.probe_samples, 'sample')})"
    else:
        delta = fig["fit_epoch"] - fig["train_mode"]
        approx = ""
    if not ev.moves(delta):
        return []
    random = ev.families.get("dropout") or ev.families.get("noise")
    msg = (f"fit reports {fmt(fig['fit_epoch'])}, the average of losses measured before each of its "
           f"{plural(ev.fit_steps, 'update')}; at the saved weights the same training-mode loss is {fmt(fig['train_mode'])}: "
           f"the weights changed during the epoch, which moves fit's figure by {delta:+.6g}{approx}.")
    if random:
        msg += " With random layers this also includes the different random draws of fit."
    return [Finding("weight-update", msg, magnitude=delta, between=("fit_epoch", "train_mode"),
                    advice="Call evaluate on the training data after fit to compare like with like; fit's figure "
                           "is a running average over changing weights.")]


def rule_class_weight(ev: Evidence) -> list[Finding]:
    if not ev.class_weight or "evaluate_class_weighted" not in ev.figures:
        return []
    delta = ev.figures["evaluate_class_weighted"] - ev.figures["evaluate"]
    if not ev.moves(delta):
        return []
    return [Finding("class-weight",
                    f"class_weight {ev.class_weight} multiplies each sample's loss in fit only; at the saved weights "
                    f"it changes the loss by {delta:+.6g} (divided by the sample count, not by the sum of weights).",
                    magnitude=delta, between=("evaluate_class_weighted", "evaluate"),
                    advice="evaluate never applies class_weight; pass the same weights as sample_weight to evaluate "
                           "to compare.")]


def rule_sample_weight(ev: Evidence) -> list[Finding]:
    sw = ev.sample_weight
    if not sw:
        return []
    delta = sw["weighted"] - sw["unweighted"]
    if not ev.moves(delta):
        return []
    return [Finding("sample-weight",
                    f"sample_weight multiplies each sample's loss and Keras divides by the number of samples, not by "
                    f"the sum of weights: the data loss is {fmt(sw['weighted'])}, unweighted it would be "
                    f"{fmt(sw['unweighted'])}, normalized by the weights {fmt(sw['normalized'])}.",
                    magnitude=delta, between=("evaluate", "manual"),
                    advice="To reproduce Keras in numpy use sum(w*l)/N per batch; use reduction="
                           "'mean_with_sample_weight' if you want sum(w*l)/sum(w).")]


def rule_regularization(ev: Evidence) -> list[Finding]:
    reg = ev.figures.get("regularization")
    if reg is None or not ev.moves(reg):
        return []
    who = f" from {_names(ev.regularized_layers)}" if ev.regularized_layers else ""
    return [Finding("regularization",
                    f"Keras adds {fmt(reg)} of penalties{who} (weight regularizers, activity regularizers, add_loss) "
                    "to the loss it reports; a numpy loss on predict() does not include them.",
                    magnitude=reg, between=("evaluate", "manual"),
                    subject=ev.regularized_layers[0] if len(ev.regularized_layers) == 1 else None,
                    advice="Add sum(model.losses) to your own computation, or compare with the data loss only.")]


def rule_unexplained_manual(ev: Evidence) -> list[Finding]:
    fig = ev.figures
    if "manual" not in fig or "evaluate" not in fig:
        return []
    residual = fig["evaluate"] - fig["manual"] - fig.get("regularization", 0.0) - ev.extra.get("semantic_gap", 0.0)
    ev.extra["manual_residual"] = residual
    if not ev.moves(residual):
        return []
    return [Finding("unexplained",
                    f"evaluate ({fmt(fig['evaluate'])}) differs from losscheck's own recomputation plus penalties "
                    f"({fmt(fig['manual'] + fig.get('regularization', 0.0))}) by {residual:+.6g}, and no known cause "
                    "accounts for it.",
                    magnitude=residual, between=("evaluate", "manual"),
                    advice="Please report this with the model: the loss may use semantics losscheck does not model.")]


#: Rules run in this order; extend with more (issue-specific modules register here).
RULES: list[Callable[[Evidence], list[Finding]]] = [
    rule_weight_update,
    rule_family("dropout"),
    rule_family("batchnorm"),
    rule_family("noise"),
    rule_interaction,
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
