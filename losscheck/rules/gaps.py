"""Rules of the gaps area: the causes of the gaps between fit's figure, the training-mode figures,
evaluate and manual, read from the decomposition (losscheck.decomposition) and the gap facts.

A cause is reported only when its layers exist and its measured size is significant
(losscheck.core.significance against |evaluate|). Findings appear in this order: weight-update,
dropout, batchnorm-batch-stats, noise-layer, interaction, unexplained (training-mode remainder),
mixed-precision (float32 copy), class-weight, regularization, sample-weight, unexplained (manual
residual).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from losscheck.core.finding import Finding
from losscheck.core.formatting import fmt, plural
from losscheck.core.significance import moves_evaluate, scale_of
from losscheck.core.taxonomy import FAMILIES, STOCHASTIC_FAMILIES
from losscheck.decomposition import Row, base_name, fit_reference
from losscheck.measurements import Measurements
from losscheck.measurements.gaps import GapMeasurements
from losscheck.rules import rule

#: family -> (code, message with {layers} and {delta}, advice)
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
#: fit's figure -> (how fit gave it, the weights the training-mode figures were measured at)
FIT_WORDS = {"fit_epoch": ("fit reports", "the saved weights"),
             "fit_logged": ("fit logged", "the epoch's final weights")}


def names(layers: tuple[str, ...] | list[str], limit: int = 6) -> str:
    """Up to `limit` names, then "and N more"."""
    shown = ", ".join(layers[:limit])
    return shown + (f" and {len(layers) - limit} more" if len(layers) > limit else "")


def _pm(u: float | None) -> str:
    return "" if u is None else f" (± {u:.2g}, std over 3 random draws)"


def _subset(g: GapMeasurements) -> str:
    return f" Measured on the first {plural(g.probe_samples, 'sample')}." if g.probe_samples is not None else ""


def _overridden_note(g: GapMeasurements, layers: tuple[str, ...]) -> str:
    """Why layers inside a nested model called with training=False still train in fit."""
    mine = [name for name in layers if name in g.overridden]
    if not mine:
        return ""
    bases = sorted({g.overridden[name] for name in mine})
    which = ", ".join(repr(b) for b in bases)
    return (f" {names(mine)} sit{'s' if len(mine) == 1 else ''} in nested model{'s' if len(bases) > 1 else ''} "
            f"{which}, called with training=False in the saved graph: Keras 3 ignores that flag when fit calls the "
            "model with training=True (tf.keras 2 honoured it), so in fit they run in training mode.")


def _family(m: Measurements, family: str) -> list[Finding]:
    """One family's effect: train_mode_<family>_only - base, when the family has layers."""
    g = m.gaps
    if g is None:
        return []
    row = g.row(family)
    layers = tuple(g.families.get(family, ()))
    if not layers or row is None:
        return []
    key, base = row["between"]
    delta = row["value"]
    if not moves_evaluate(m, delta):
        return []
    code, text, advice = FAMILY_TEXT[family]
    u = g.uncertainty.get(key)
    note = _overridden_note(g, layers)
    msg = (text.format(layers=names(layers), delta=f"{delta:+.6g}")
           + f" ({key} {fmt(m.figures[key])} - {base} {fmt(m.figures[base])}){_pm(u)}." + note + _subset(g))
    if note and family == "batchnorm":
        advice = ("To keep these BN layers on their moving statistics in fit, freeze them (trainable=False on "
                  "the BN layers or the nested model): Keras 3 keeps frozen BN in inference mode, while "
                  "base(x, training=False) alone no longer does. " + advice)
    subject = layers[0] if len(layers) == 1 else None
    return [Finding(code, msg, magnitude=delta, subject=subject, between=(key, base), advice=advice,
                    uncertainty=u)]


@rule("weight-update")
def weight_update(m: Measurements) -> list[Finding]:
    """fit's figure - the training-mode figure fit measures first: the weights changed during the epoch."""
    g, fig = m.gaps, m.figures
    if g is None:
        return []
    row = g.row("weight update")
    if row is None or not moves_evaluate(m, row["value"]):
        return []
    delta = row["value"]
    ref, base, fit = fit_reference(fig), base_name(fig), g.fit_figure
    says, weights = FIT_WORDS.get(fit, FIT_WORDS["fit_epoch"])
    random = any(g.families.get(f) for f in STOCHASTIC_FAMILIES)
    if row["between"]:
        msg = (f"{says} {fmt(fig[fit])} ({fit}), the average of losses measured before each of "
               f"its {plural(g.fit_steps, 'update')}; at {weights} the same training-mode loss is {fmt(fig[ref])} "
               f"({ref}): the weights changed during the epoch, which moves fit's figure by {delta:+.6g}.")
    else:
        gap = fig[fit] - fig["evaluate"]
        explained = fig[ref] - fig[base]
        msg = (f"{fit} - evaluate is {gap:+.6g} on all samples; on the first "
               f"{plural(g.probe_samples, 'sample')}, {ref} - {base} ({fmt(fig[ref])} - {fmt(fig[base])}) accounts "
               f"for {explained:+.6g}; the rest, {delta:+.6g}, is an estimate of how much the weight changes during "
               f"the epoch's {plural(g.fit_steps, 'update')} move fit's figure (it also holds any difference between "
               "the subset and the whole data).")
    if random:
        msg += " With random layers this also includes the different random draws of fit."
    return [Finding("weight-update", msg, magnitude=delta, between=row["between"],
                    advice="Call evaluate on the training data after fit to compare like with like; fit's figure "
                           "is a running average over changing weights.")]


@rule("dropout")
def dropout(m: Measurements) -> list[Finding]:
    """train_mode_dropout_only - base: Dropout-family layers active in training only."""
    return _family(m, "dropout")


@rule("batchnorm-batch-stats")
def batchnorm_batch_stats(m: Measurements) -> list[Finding]:
    """train_mode_batchnorm_only - base: trainable BatchNormalization on batch statistics in training."""
    return _family(m, "batchnorm")


@rule("noise-layer")
def noise_layer(m: Measurements) -> list[Finding]:
    """train_mode_noise_only - base and train_mode_custom_only - base: noise/augmentation layers, then
    other layers whose call() takes `training`."""
    return _family(m, "noise") + _family(m, "custom")


@dataclass(frozen=True)
class _Remainder:
    """The training-mode gap (row `total`) and its part not accounted for by one family at a time
    (`residual`, from the `interaction` row, or the whole gap when no family figure exists)."""

    gaps: GapMeasurements
    row: Row | None
    total: Row
    residual: float
    present: list[str]

    @property
    def is_interaction(self) -> bool:
        """Two or more families were measured one at a time: the remainder is their interaction."""
        return len(self.present) >= 2 and self.row is not None


def _training_remainder(m: Measurements) -> _Remainder | None:
    """The training-mode gap's remainder, when it is significant."""
    g = m.gaps
    if g is None:
        return None
    row, total = g.row("interaction"), g.row("training-mode layers")
    if total is None:
        return None
    residual = row["value"] if row is not None else total["value"]
    if not moves_evaluate(m, residual):
        return None
    return _Remainder(g, row, total, residual, [f for f in FAMILIES if g.families.get(f)])


@rule("interaction")
def interaction(m: Measurements) -> list[Finding]:
    """The training-mode gap's remainder when two or more families are in training mode together."""
    r = _training_remainder(m)
    if r is None or not r.is_interaction:
        return []
    g, present = r.gaps, r.present
    u = g.uncertainty.get("interaction")
    parts = {row["name"]: row["value"] for row in g.decomposition if row["parent"] == "training-mode layers"}
    separately = ", ".join(f"{FAMILY_LABEL[f]} {parts[f]:+.6g}" for f in present if f in parts)
    together = sum(parts.get(f, 0.0) for f in present)
    msg = (f"All training-mode layers together change the loss by {r.total['value']:+.6g} (train_mode - "
           f"{base_name(m.figures)}), but one family at a time by {together:+.6g} ({separately}): {r.residual:+.6g}"
           f"{_pm(u)} appears only when they are in training mode together.")
    if "batchnorm" in present:
        others = [FAMILY_LABEL[f] for f in present if f != "batchnorm"]
        msg += (f" With BatchNormalization on batch statistics, what {' and '.join(others)} do to the "
                "activations also changes the statistics BN normalizes with, so the effects do not add up.")
    return [Finding("interaction", msg + _subset(g), magnitude=r.residual, uncertainty=u,
                    advice="Read each family's size as its effect with the others in inference mode; the "
                           "training-mode gap is their sum plus this interaction.")]


@rule("unexplained")
def unexplained_training_mode(m: Measurements) -> list[Finding]:
    """The training-mode gap's remainder that no family (or their interaction) accounts for."""
    r = _training_remainder(m)
    if r is None or r.is_interaction:
        return []
    return [Finding("unexplained",
                    f"Training-mode loss differs from {base_name(m.figures)} by {r.total['value']:+.6g}, of which "
                    f"{r.residual:+.6g} is not caused by any Dropout, BatchNormalization, noise or other layer whose "
                    "call() takes `training`." + _subset(r.gaps),
                    magnitude=r.residual,
                    between=None if r.row is not None else r.total["between"],
                    advice="A layer changes its behaviour in training without a `training` argument (e.g. it reads "
                           "a global flag); please report this with the model.")]


@rule("mixed-precision")
def mixed_precision_float32(m: Measurements) -> list[Finding]:
    """evaluate - evaluate_float32: the model computes in float16/bfloat16 (the part of the code's rule
    for the float32 copy; losscheck.rules.semantics continues it for low-precision outputs)."""
    fig = m.figures
    if "evaluate_float32" not in fig or "evaluate" not in fig:
        return []
    if m.parity is not None and m.parity.float32 is not None:  # --parity float32: precision-difference sizes it
        return []
    delta = fig["evaluate"] - fig["evaluate_float32"]
    if not moves_evaluate(m, delta):
        return []
    facts = m.gaps.low_precision if m.gaps is not None else None
    policies = ", ".join((facts.policies if facts else ()) or ["float16/bfloat16"])
    layers = facts.layers if facts else ()
    outs = facts.output_layers if facts else ()
    where = f" including the output layer{'s' if len(outs) > 1 else ''} {names(outs)}" if outs else ""
    rel = abs(delta) / scale_of(fig.get("evaluate"))
    msg = (f"The model computes in {policies} ({len(layers)} layer{'s' if len(layers) != 1 else ''}{where}): "
           f"evaluate gives {fmt(fig['evaluate'])}, an in-memory copy with float32 dtype policies and the same "
           f"weights gives {fmt(fig['evaluate_float32'])} ({delta:+.6g}, {rel:.2%}). Keras computes the loss in "
           "float32, but on the low-precision outputs.")
    advice = ("Give the output layer (at least its final activation) dtype='float32', as the Keras mixed-precision "
              "guide advises, so the loss sees float32 outputs; what remains is the precision of the model itself.")
    return [Finding("mixed-precision", msg, magnitude=delta, subject=outs[0] if len(outs) == 1 else None,
                    between=("evaluate", "evaluate_float32"), advice=advice)]


def _class_weight_text(cw: Mapping[int, float]) -> str:
    return repr(dict(cw))


@rule("class-weight")
def class_weight(m: Measurements) -> list[Finding]:
    """train_mode_class_weighted - train_mode: class_weight weights fit's loss only."""
    g = m.gaps
    if g is None or not g.class_weight:
        return []
    row = g.row("class weight")
    if row is None or not moves_evaluate(m, row["value"]):
        return []
    delta = row["value"]
    a, b = row["between"]
    weights = FIT_WORDS.get(g.fit_figure, FIT_WORDS["fit_epoch"])[1]
    return [Finding("class-weight",
                    f"class_weight {_class_weight_text(g.class_weight)} multiplies each sample's loss in fit only "
                    f"(divided by the sample count, not by the sum of weights); with every layer in training "
                    f"behaviour at {weights} it changes the loss by {delta:+.6g} ({a} {fmt(m.figures[a])} - {b} "
                    f"{fmt(m.figures[b])})." + _subset(g),
                    magnitude=delta, between=(a, b),
                    advice="evaluate never applies class_weight; pass the same weights as sample_weight to evaluate "
                           "to compare.")]


@rule("regularization")
def regularization(m: Measurements) -> list[Finding]:
    """The regularization figure: penalties in Keras's total that a numpy loss on predict() lacks."""
    reg = m.figures.get("regularization")
    if reg is None or m.gaps is None or not moves_evaluate(m, reg):
        return []
    layers = m.gaps.regularized_layers
    who = f" from {names(layers)}" if layers else ""
    return [Finding("regularization",
                    f"Keras adds {fmt(reg)} of penalties{who} (weight regularizers, activity regularizers, add_loss) "
                    "to the loss it reports (the regularization figure, part of evaluate - manual); a numpy loss on "
                    "predict() does not include them.",
                    magnitude=reg,
                    subject=layers[0] if len(layers) == 1 else None,
                    advice="Add sum(model.losses) to your own computation, or compare with the data loss only.")]


def _sample_weight_text(per_element: bool, masked: bool) -> tuple[str, str]:
    """(what Keras does with the weights, the numpy formula that reproduces it)."""
    if per_element:
        what = ("sample_weight holds one weight per loss element (e.g. per pixel): it multiplies each element's "
                "loss and Keras divides by the number of " + ("unmasked " if masked else "")
                + "loss elements (pixels or positions, not samples), not by the sum of weights")
        return what, "sum(w*l)/(number of " + ("unmasked " if masked else "") + "elements)"
    if masked:
        return ("sample_weight multiplies each sample's loss elements and Keras divides by the number of unmasked "
                "elements, not by the sum of their weights"), "sum(w*l*m)/sum(m)"
    return ("sample_weight multiplies each sample's loss and Keras divides by the number of samples, not by "
            "the sum of weights"), "sum(w*l)/N"


@rule("sample-weight")
def sample_weight(m: Measurements) -> list[Finding]:
    """weighted - unweighted data loss: how sample weights enter and normalize Keras's loss."""
    sw = m.gaps.sample_weight if m.gaps is not None else None
    if sw is None:
        return []
    delta = sw.weighted - sw.unweighted
    if not moves_evaluate(m, delta):
        return []
    what, numpy = _sample_weight_text(sw.per_element, sw.masked)
    over = " over the unmasked elements" if sw.masked else ""
    return [Finding("sample-weight",
                    f"{what}: the data loss is {fmt(sw.weighted)}, unweighted it would be "
                    f"{fmt(sw.unweighted)} ({delta:+.6g}), normalized by the weights (sum(w*l)/sum(w){over}, per "
                    f"batch) {fmt(sw.normalized)}.",
                    magnitude=delta,
                    advice=f"To reproduce Keras in numpy use {numpy} per batch; use reduction="
                           "'mean_with_sample_weight' if you want sum(w*l)/sum(w).")]


@rule("unexplained", continued=True)
def unexplained_manual(m: Measurements) -> list[Finding]:
    """evaluate - manual - regularization: a residual no known cause accounts for."""
    fig = m.figures
    row = m.gaps.row("residual") if m.gaps is not None else None
    if row is None or not moves_evaluate(m, row["value"]):
        return []
    residual = row["value"]
    reg = fig.get("regularization", 0.0)
    return [Finding("unexplained",
                    f"evaluate ({fmt(fig['evaluate'])}) minus losscheck's own recomputation ({fmt(fig['manual'])}) "
                    f"minus the penalties ({fmt(reg)}) leaves {residual:+.6g}, and no known cause accounts for it.",
                    magnitude=residual,
                    advice="Please report this with the model: the loss may use semantics losscheck does not model.")]
