"""Why a user's natural numpy computation (a plain mean of the loss formula on predict() output, no
weights, no masks) differs from Keras's number: masks, the logits shortcut, probability clipping and
mixed precision. Sample weights are explained by attribution.rule_sample_weight.

The probe measures the chain of variants in its inference pass (losscheck.reference.variants); each
finding is one link of the chain, reported only when it moves the loss by more than rtol * |evaluate|.

Hook called by compare: semantic_findings(ctx) -> list[Finding] (ctx: losscheck.checks.CheckContext).
Adds the section "natural_numpy" (the chain's figures) to ctx.sections. Those are not report figures,
so the findings carry no `between` pair; each message states the two values its magnitude separates.
"""

from __future__ import annotations

import math
from typing import Any

from losscheck.findings import Finding


def _fmt(v: float) -> str:
    return f"{v:.6g}"


def _outputs(facts: dict[str, Any], attr: str) -> list[str]:
    return [o for o, f in facts.items() if getattr(f, attr)]


def _subject(names: list[str]) -> str | None:
    return names[0] if len(names) == 1 else None


def _which(names: list[str], n_outputs: int) -> str:
    if n_outputs <= 1:
        return "the output"
    return ("output " if len(names) == 1 else "outputs ") + ", ".join(repr(n) for n in names)


def _cap(text: str) -> str:
    return text[:1].upper() + text[1:]


def semantic_findings(ctx) -> list[Finding]:
    inf = ctx.inference
    sem = getattr(inf, "semantic", None)
    if not sem or inf.manual is None:
        return []
    fig: dict[str, float | None] = sem["figures"]
    facts: dict[str, Any] = sem["facts"]
    rtol = float(getattr(ctx.config, "rtol", 1e-4))
    scale = max(abs(inf.evaluate), 1e-12)
    n_out = len(facts)

    def moves(delta: float | None) -> bool:
        return delta is None or abs(delta) > rtol * scale

    g: dict[str, float] = {k: float(v) for k, v in fig.items() if v is not None and math.isfinite(v)}
    ctx.sections["natural_numpy"] = {k: g.get(k) for k in fig}
    findings: list[Finding] = []

    # mask -------------------------------------------------------------------------------------------
    masked = _outputs(facts, "masked")
    if masked and "no_weights" in g and "no_masks" in g:
        delta = g["no_weights"] - g["no_masks"]
        if moves(delta):
            share = sum(facts[o].masked_fraction[0] for o in masked) / max(
                sum(facts[o].masked_fraction[1] for o in masked), 1.0)
            findings.append(Finding(
                "mask",
                f"Keras leaves out the masked loss elements of {_which(masked, n_out)} ({share:.1%} of them) and "
                f"divides each batch by its own count of unmasked elements: {_fmt(g['no_weights'])} "
                f"(without sample weights), while a plain mean over every element gives {_fmt(g['no_masks'])} "
                f"({delta:+.6g}).",
                magnitude=delta, subject=_subject(masked), advice="To reproduce it, take sum(loss*mask)/sum(mask) per batch (mask = the output's "
                       "_keras_mask from model(x, training=False)) and average the batch values weighted by "
                       "batch size; predict() drops the mask.",
            ))

    # logits shortcut ----------------------------------------------------------------------------------
    shortcut = _outputs(facts, "logits_used")
    if shortcut and "no_masks" in g and "probabilities" in g:
        delta = g["no_masks"] - g["probabilities"]
        if moves(delta):
            findings.append(Finding(
                "logits-shortcut",
                f"TensorFlow computes the crossentropy of {_which(shortcut, n_out)} from the pre-activation logits "
                f"cached on the softmax/sigmoid output, so nothing is clipped: {_fmt(g['no_masks'])}, while the "
                f"same loss on predict() probabilities (clipped to [1e-7, 1-1e-7]) gives "
                f"{_fmt(g['probabilities'])} ({delta:+.6g}).",
                magnitude=delta, subject=_subject(shortcut), advice="Compute the loss from the logits (a model without the final activation and "
                       "from_logits=True, or log-softmax/log-sigmoid in numpy); saturated probabilities "
                       "cannot reproduce Keras's value.",
            ))

    # probability clipping ------------------------------------------------------------------------------
    clipped = [o for o in _outputs(facts, "clipped") if facts[o].clip_active]
    unclipped = fig.get("unclipped")
    if clipped and "no_masks" in g and unclipped is not None:
        gap: float | None = g["no_masks"] - unclipped if math.isfinite(unclipped) else None
        if moves(gap):
            count = sum(facts[o].clip_active for o in clipped)
            what = (f"the unclipped formula gives {_fmt(unclipped)} ({gap:+.6g})" if gap is not None
                    else "the unclipped formula is infinite (log of 0)")
            findings.append(Finding(
                "probability-clipping",
                f"Keras computes the crossentropy of {_which(clipped, n_out)} from probabilities clipped to "
                f"[1e-7, 1-1e-7] ({count} predicted values lie outside): {_fmt(g['no_masks'])}, while "
                f"{what}.",
                magnitude=gap, subject=_subject(clipped), advice="Clip with np.clip(p, 1e-7, 1 - 1e-7) as Keras does to reproduce it; to get the "
                       "unclipped loss, output logits and use from_logits=True.",
            ))

    # mixed precision -------------------------------------------------------------------------------------
    low = [o for o, f in facts.items() if f.low_precision]
    if low:
        dtype = facts[low[0]].low_precision
        if "float64_outputs" in g and "keras" in g:
            ref = g["float64_outputs"]
            delta = g["keras"] - ref
            if moves(delta):
                findings.append(Finding(
                    "mixed-precision",
                    f"{_cap(_which(low, n_out))} is computed in {dtype}: Keras casts it to float32 "
                    f"before the loss, so the loss sees {dtype}-rounded probabilities and loses the logits "
                    f"shortcut: {_fmt(g['keras'])}, against {_fmt(ref)} with the activation computed in full "
                    f"precision from the same logits ({delta:+.6g}).",
                    magnitude=delta, subject=_subject(low), advice="Give the final activation dtype='float32' (e.g. Activation('softmax', "
                           "dtype='float32')) so the loss gets float32 probabilities and their logits.",
                ))
    return findings
