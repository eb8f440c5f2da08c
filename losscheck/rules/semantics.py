"""Rules of the semantics area: why a user's natural numpy computation (a plain mean of the loss
formula on predict() output, no weights, no masks) differs from Keras's number: masks, the logits
shortcut, probability clipping and low-precision outputs. Sample weights are explained by the
sample-weight rule (losscheck.rules.gaps).

Each finding is one link of the chain measured in the inference pass (SemanticMeasurements), reported
only when it is significant (against |evaluate|) and the manual figure exists. The chain's figures are
not report figures, so these findings carry no `between` pair; each message states the two values its
magnitude separates.
"""

from __future__ import annotations

import losscheck.rules.gaps  # noqa: F401 - registers the first part of the mixed-precision rule
from losscheck.core.finding import Finding
from losscheck.core.formatting import fmt
from losscheck.core.significance import moves_evaluate
from losscheck.measurements import Measurements
from losscheck.measurements.semantics import SemanticMeasurements
from losscheck.rules import rule


def _subject(names: list[str]) -> str | None:
    return names[0] if len(names) == 1 else None


def _which(names: list[str], n_outputs: int) -> str:
    if n_outputs <= 1:
        return "the output"
    return ("output " if len(names) == 1 else "outputs ") + ", ".join(repr(n) for n in names)


def _cap(text: str) -> str:
    return text[:1].upper() + text[1:]


def _chain(m: Measurements) -> SemanticMeasurements | None:
    """The chain, when it was measured and the manual figure exists."""
    if m.semantics is None or "manual" not in m.figures:
        return None
    return m.semantics


def _link(m: Measurements, has: str, a: str, b: str) -> tuple[list[str], dict[str, float], float] | None:
    """(outputs whose fact `has` is set, the chain's finite figures, a - b) when those outputs exist,
    both figures are finite and a - b is significant."""
    sem = _chain(m)
    if sem is None:
        return None
    g = sem.finite()
    outputs = [o for o, f in sem.facts.items() if getattr(f, has)]
    if not outputs or a not in g or b not in g:
        return None
    delta = g[a] - g[b]
    return (outputs, g, delta) if moves_evaluate(m, delta) else None


@rule("mask")
def mask(m: Measurements) -> list[Finding]:
    """no_weights - no_masks: Keras leaves masked elements out and divides by the unmasked count."""
    link = _link(m, "masked", "no_weights", "no_masks")
    if link is None or m.semantics is None:
        return []
    masked, g, delta = link
    facts = m.semantics.facts
    share = sum(facts[o].masked_fraction[0] for o in masked) / max(
        sum(facts[o].masked_fraction[1] for o in masked), 1.0)
    return [Finding(
        "mask",
        f"Keras leaves out the masked loss elements of {_which(masked, len(facts))} ({share:.1%} of them) and "
        f"divides each batch by its own count of unmasked elements: {fmt(g['no_weights'])} "
        f"(without sample weights), while a plain mean over every element gives {fmt(g['no_masks'])} "
        f"({delta:+.6g}).",
        magnitude=delta, subject=_subject(masked),
        advice="To reproduce it, take sum(loss*mask)/sum(mask) per batch (mask = the output's "
               "_keras_mask from model(x, training=False)) and average the batch values weighted by "
               "batch size; predict() drops the mask.",
    )]


@rule("logits-shortcut")
def logits_shortcut(m: Measurements) -> list[Finding]:
    """no_masks - probabilities: TensorFlow's crossentropy from the cached logits, unclipped."""
    link = _link(m, "logits_used", "no_masks", "probabilities")
    if link is None or m.semantics is None:
        return []
    shortcut, g, delta = link
    return [Finding(
        "logits-shortcut",
        f"TensorFlow computes the crossentropy of {_which(shortcut, len(m.semantics.facts))} from the "
        f"pre-activation logits cached on the softmax/sigmoid output, so nothing is clipped: {fmt(g['no_masks'])}, "
        f"while the same loss on predict() probabilities (clipped to [1e-7, 1-1e-7]) gives "
        f"{fmt(g['probabilities'])} ({delta:+.6g}).",
        magnitude=delta, subject=_subject(shortcut),
        advice="Compute the loss from the logits (a model without the final activation and "
               "from_logits=True, or log-softmax/log-sigmoid in numpy); saturated probabilities "
               "cannot reproduce Keras's value.",
    )]


@rule("probability-clipping")
def probability_clipping(m: Measurements) -> list[Finding]:
    """no_masks - unclipped: crossentropy on probabilities clipped to [1e-7, 1-1e-7]; no magnitude when
    the unclipped formula is infinite."""
    sem = _chain(m)
    if sem is None:
        return []
    g, facts = sem.finite(), sem.facts
    clipped = [o for o, f in facts.items() if f.clipped and f.clip_active]
    unclipped = sem.figures.get("unclipped")
    if not clipped or "no_masks" not in g or unclipped is None:
        return []
    gap: float | None = g["no_masks"] - unclipped if "unclipped" in g else None
    if not moves_evaluate(m, gap):
        return []
    count = sum(facts[o].clip_active for o in clipped)
    what = (f"the unclipped formula gives {fmt(unclipped)} ({gap:+.6g})" if gap is not None
            else "the unclipped formula is infinite (log of 0)")
    return [Finding(
        "probability-clipping",
        f"Keras computes the crossentropy of {_which(clipped, len(facts))} from probabilities clipped to "
        f"[1e-7, 1-1e-7] ({count} predicted values lie outside): {fmt(g['no_masks'])}, while "
        f"{what}.",
        magnitude=gap, subject=_subject(clipped),
        advice="Clip with np.clip(p, 1e-7, 1 - 1e-7) as Keras does to reproduce it; to get the "
               "unclipped loss, output logits and use from_logits=True.",
    )]


@rule("mixed-precision", continued=True)
def mixed_precision_outputs(m: Measurements) -> list[Finding]:
    """keras - float64_outputs: a float16/bfloat16 output reaches the loss rounded and without its
    logits (the part of the mixed-precision rule for low-precision outputs; losscheck.rules.gaps has
    the part for the float32 copy)."""
    link = _link(m, "low_precision", "keras", "float64_outputs")
    if link is None or m.semantics is None:
        return []
    low, g, delta = link
    facts = m.semantics.facts
    dtype = facts[low[0]].low_precision
    return [Finding(
        "mixed-precision",
        f"{_cap(_which(low, len(facts)))} is computed in {dtype}: Keras casts it to float32 "
        f"before the loss, so the loss sees {dtype}-rounded probabilities and loses the logits "
        f"shortcut: {fmt(g['keras'])}, against {fmt(g['float64_outputs'])} with the activation computed in full "
        f"precision from the same logits ({delta:+.6g}).",
        magnitude=delta, subject=_subject(low),
        advice="Give the final activation dtype='float32' (e.g. Activation('softmax', "
               "dtype='float32')) so the loss gets float32 probabilities and their logits.",
    )]
