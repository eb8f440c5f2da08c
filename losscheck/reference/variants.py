"""What a user's natural numpy computation would give instead of Keras's number, effect by effect.

The natural computation is a plain mean of the loss formula on predict() output: no sample weights,
no masks, probabilities (clipped as keras.losses clips them) instead of the cached logits. Keras's
data loss differs from it by a chain of effects, each measured on the same batches by switching one
thing off at a time (every figure is an epoch mean weighted by n_b, outputs combined with their
loss weights, so the chain adds up exactly):

    keras            = manual: Keras's semantics (weights, masks, logits where Keras uses them)
    no_weights       = the same without sample weights             sample-weight = keras - no_weights
    no_masks         = ... and without any mask                    mask = no_weights - no_masks
    probabilities    = ... and from clipped probabilities          logits-shortcut = no_masks - probabilities
                       where Keras used the logits
    unclipped        = no_masks with the textbook formula where    probability-clipping = no_masks - unclipped
                       Keras clipped probabilities (may be inf)
    float64_outputs  = keras, but with the float16 activation      mixed-precision = keras - float64_outputs
                       recomputed in float64 from its logits

Numpy only; fed one batch at a time by the probe (see probes.Prober.inference_pass).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from losscheck.reference import formulas
from losscheck.reference.reduction import EpochMean, loss_values_and_mask, output_batch_loss, uses_logits
from losscheck.reference.specs import LOGITS_SHORTCUT_KINDS, LossSpec

VARIANTS = ("keras", "no_weights", "no_masks", "probabilities", "unclipped", "float64_outputs")
LOW_PRECISION = ("float16", "bfloat16")


@dataclass
class OutputFacts:
    """What was seen for one output over the pass."""

    masked: bool = False  # a Keras mask or the loss's own mask was present
    masked_fraction: list[float] = field(default_factory=lambda: [0.0, 0.0])  # masked, total elements
    logits_used: bool = False  # Keras computed a from_logits=False crossentropy from the cached logits
    clipped: bool = False  # Keras computed a crossentropy from probabilities
    clip_active: int = 0  # probabilities outside [eps, 1 - eps] where Keras clipped
    low_precision: str | None = None  # float16 / bfloat16 output dtype
    weighted: bool = False


class SemanticStats:
    """Accumulates the variant figures over the batches of the inference pass."""

    def __init__(self, specs: dict[str, LossSpec | None], loss_weights: dict[str, float], outputs: list[str]):
        self.specs = specs
        self.loss_weights = loss_weights
        self.outputs = outputs
        self.means = {v: EpochMean() for v in VARIANTS}
        self.failed: set[str] = set()
        self.facts = {o: OutputFacts() for o in outputs if specs.get(o) is not None}

    # one batch -------------------------------------------------------------------------------------
    def __call__(self, b: Any) -> None:
        if self.failed >= set(VARIANTS):
            return
        sums = dict.fromkeys(VARIANTS, 0.0)
        for i, o in enumerate(self.outputs):
            spec = self.specs.get(o)
            if spec is None or o not in b.output_losses:
                continue
            lw = self.loss_weights.get(o, 1.0)
            facts = self.facts[o]
            for name, value in self._output(spec, facts, b, i, o).items():
                if value is None:
                    self.failed.add(name)
                else:
                    sums[name] += lw * value
        for name in VARIANTS:
            if name not in self.failed:
                self.means[name].add(sums[name], b.n)

    def _output(self, spec: LossSpec, facts: OutputFacts, b: Any, i: int, o: str) -> dict[str, float | None]:
        y, p = b.y[i], b.outputs[i]
        mask, logits, values = b.masks[i], b.logits[i], b.values[i]
        out: dict[str, float | None] = {"keras": b.output_losses[o]}
        builtin = values is None
        own = None
        if builtin and (spec.kind == "circle" or spec.option("ignore_class") is not None):
            res = _safe(lambda: loss_values_and_mask(spec, y, p, logits))
            own = None if res is None else res[1]
        if mask is not None or own is not None:
            facts.masked = True
            m = mask if own is None else (own if mask is None else np.asarray(mask, bool) & own)
            m = np.asarray(m, bool)
            facts.masked_fraction[0] += float(m.size - m.sum())
            facts.masked_fraction[1] += float(m.size)
        if b.sample_weight is not None:
            facts.weighted = True

        def f(**kw):
            return _safe(lambda: output_batch_loss(spec, y, p, mask=kw.pop("mask", mask), logits=logits,
                                                   values=values, **kw))

        # each switch only costs a recomputation when there is something to switch off
        out["no_weights"] = out["keras"] if b.sample_weight is None else f(sample_weight=None)
        unmasked = mask is None and own is None and (values is not None or spec.kind != "circle")
        out["no_masks"] = out["no_weights"] if unmasked else f(sample_weight=None, mask=None, loss_mask=False)
        out["probabilities"] = out["no_masks"]
        out["unclipped"] = out["no_masks"]
        if builtin and spec.kind in formulas.CLIPPING_KINDS:
            used = spec.kind in LOGITS_SHORTCUT_KINDS and uses_logits(spec, y, _f64(p), logits)
            if used:
                # with from_logits=True the shortcut is a from-logits mismatch (reported by the
                # from-logits-mismatch rule in losscheck.rules.lossfn)
                facts.logits_used = not spec.option("from_logits", False)
                out["probabilities"] = f(sample_weight=None, mask=None, loss_mask=False, logits_mode="never")
            elif not (spec.option("from_logits", False) and spec.kind in LOGITS_SHORTCUT_KINDS):
                facts.clipped = True  # from_logits crossentropies never clip (the focal CCE does)
                probs = _f64(p)
                facts.clip_active += int(np.sum((probs < formulas.LO) | (probs > formulas.HI)))
                out["unclipped"] = f(sample_weight=None, mask=None, loss_mask=False, logits_mode="unclipped")
        out["float64_outputs"] = out["keras"]
        dtype = str(np.asarray(p).dtype)
        if dtype in LOW_PRECISION:
            facts.low_precision = dtype
            raw = getattr(b, "raw_logits", [None] * (i + 1))[i]
            act = getattr(b, "activations", [None] * (i + 1))[i]
            if builtin and raw is not None and act in ("Softmax", "Sigmoid"):
                z = _f64(raw)
                p64 = formulas.softmax(z, -1) if act == "Softmax" else formulas._sigmoid(z)
                lg = z if spec.kind in LOGITS_SHORTCUT_KINDS else None
                out["float64_outputs"] = _safe(lambda: output_batch_loss(
                    spec, y, p64.astype(np.float32), sample_weight=b.sample_weight, mask=mask, logits=lg))
            else:
                out["float64_outputs"] = None
        return out

    # results ---------------------------------------------------------------------------------------
    def summary(self) -> dict[str, Any]:
        """{'figures': variant -> its mean loss (None when it failed or saw no batch), 'facts': per-output facts}."""
        figures = {v: (None if v in self.failed or not m.count else m.value) for v, m in self.means.items()}
        return {"figures": figures, "facts": self.facts}


def _f64(x: Any) -> np.ndarray:
    return np.asarray(x).astype(np.float64)


def _safe(fn):
    try:
        with np.errstate(all="ignore"):
            return fn()
    except Exception:  # noqa: BLE001 - a variant that cannot be computed is simply not reported
        return None


def finite(x: float | None) -> bool:
    """True when x is a finite number (not None, NaN or Inf)."""
    return x is not None and math.isfinite(x)
