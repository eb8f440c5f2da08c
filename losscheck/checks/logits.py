"""`from-logits-mismatch`: probabilities fed to a `from_logits=True` crossentropy, or unbounded values
(logits) fed to a `from_logits=False` one. The graph (the output's final activation) says it; the
output values confirm it, and the numpy reference measures what the mismatch costs."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from losscheck.checks.common import CROSSENTROPY_KINDS, OutputLoss
from losscheck.findings import Finding
from losscheck.reference import EpochMean, LossSpec, output_batch_loss

PROBABILITY_ACTIVATIONS = ("softmax", "sigmoid")


def static_check(ol: OutputLoss) -> list[Finding]:
    """Graph evidence alone: a softmax/sigmoid output feeding a from_logits=True crossentropy."""
    if ol.kind not in CROSSENTROPY_KINDS or not ol.option("from_logits", False):
        return []
    act = ol.facts.activation
    if act not in PROBABILITY_ACTIVATIONS:
        return []
    msg = (f"Output {ol.name!r} ends in a {act} (layer {ol.facts.activation_layer!r}), so it holds probabilities, "
           f"but its loss, {ol.spec.label}, treats them as logits (from_logits=True).")
    return [Finding("from-logits-mismatch", msg, subject=ol.name, advice=_advice_probs(act))]


def _advice_probs(act: str) -> str:
    return (f"Use from_logits=False with the {act} output, or drop the {act} (linear output) and keep "
            "from_logits=True; apply the activation at prediction time.")


@dataclass
class RangeStats:
    """Value range of one output over the data, and the loss with the flag as written vs flipped."""

    lo: float = np.inf
    hi: float = -np.inf
    outside: int = 0
    count: int = 0
    row_dev: float = 0.0  # max |sum over the last axis - 1|
    keras: EpochMean = field(default_factory=EpochMean)  # the loss as Keras computes it
    flipped: EpochMean = field(default_factory=EpochMean)  # with from_logits flipped (or taken literally)
    failed: bool = False  # the reference could not compute one of the two

    def add(self, p: np.ndarray) -> None:
        p = np.asarray(p, np.float64)
        finite = p[np.isfinite(p)]
        if finite.size:
            self.lo = min(self.lo, float(finite.min()))
            self.hi = max(self.hi, float(finite.max()))
        self.outside += int(np.sum((finite < 0) | (finite > 1)))
        self.count += int(finite.size)
        if p.ndim >= 2 and p.shape[-1] > 1 and finite.size == p.size:
            self.row_dev = max(self.row_dev, float(np.max(np.abs(p.sum(axis=-1) - 1.0))))

    @property
    def probabilities(self) -> bool:
        return self.count > 0 and self.outside == 0

    @property
    def rows_sum_to_one(self) -> bool:
        return self.probabilities and self.row_dev < 1e-3


class LogitsObserver:
    """Inference-pass observer: output ranges and the loss with from_logits as written vs flipped."""

    def __init__(self, outputs: list[OutputLoss]) -> None:
        self.outputs = [ol for ol in outputs if ol.kind in CROSSENTROPY_KINDS]
        self.stats = {ol.name: RangeStats() for ol in self.outputs}

    def __call__(self, b) -> None:
        for ol in self.outputs:
            st = self.stats[ol.name]
            y, p, lg = b.y[ol.index], b.outputs[ol.index], b.logits[ol.index]
            st.add(p)
            written = bool(ol.option("from_logits", False))
            flipped_spec = LossSpec(ol.spec.kind, ol.spec.reduction, {**ol.spec.options, "from_logits": not written},
                                    ol.spec.display)
            try:
                if written:
                    # Keras (TF) quietly uses the cached pre-activation logits of a softmax/sigmoid output
                    keras_value = output_batch_loss(flipped_spec, y, p, sample_weight=b.sample_weight,
                                                    mask=b.masks[ol.index], logits=lg) if lg is not None else None
                    literal = output_batch_loss(ol.spec, y, p, sample_weight=b.sample_weight, mask=b.masks[ol.index])
                    if keras_value is None:
                        keras_value = literal
                    st.keras.add(keras_value, b.n)
                    st.flipped.add(literal, b.n)
                else:
                    st.keras.add(b.output_losses.get(ol.name, np.nan), b.n)
                    st.flipped.add(output_batch_loss(flipped_spec, y, p, sample_weight=b.sample_weight,
                                                     mask=b.masks[ol.index]), b.n)
            except Exception:  # noqa: BLE001 - without the measurement the finding still stands
                st.failed = True


def data_check(ol: OutputLoss, st: RangeStats, static: list[Finding]) -> list[Finding]:
    """Confirm (or find) the mismatch from the output values; enrich the static finding in place."""
    written = bool(ol.option("from_logits", False))
    k = st.keras.value if st.keras.count and not st.failed else None
    f = st.flipped.value if st.flipped.count and not st.failed else None
    if written:
        looks = st.rows_sum_to_one if ol.kind != "binary_crossentropy" and ol.facts.shape[-1] != 1 else None
        if static:
            item = static[0]
            if st.probabilities:
                item.message += (f" Confirmed from the outputs: every value lies in [{st.lo:.4g}, {st.hi:.4g}]"
                                 + (f" and each row sums to 1 (max deviation {st.row_dev:.2g})"
                                    if st.rows_sum_to_one else "") + ".")
            if k is not None and f is not None:
                item.message += (f" Keras's TensorFlow backend notices the {ol.facts.activation} and silently uses "
                                 f"its cached input, so it reports {k:.6g}; taken as logits, as the loss asks "
                                 f"(another backend, a cast or a Lambda after the activation, or numpy on "
                                 f"predict()), the same outputs give {f:.6g}.")
                item.magnitude = f - k
            return []
        if looks:
            msg = (f"Output {ol.name!r} holds probabilities (every value in [{st.lo:.4g}, {st.hi:.4g}], each row "
                   f"sums to 1 within {st.row_dev:.2g}) but its loss, {ol.spec.label}, treats them as logits "
                   "(from_logits=True).")
            return [Finding("from-logits-mismatch", msg, magnitude=None if k is None or f is None else f - k,
                            subject=ol.name, advice=_advice_probs("softmax"))]
        return []
    if ol.facts.activation in PROBABILITY_ACTIVATIONS or st.probabilities or st.count == 0:
        return []
    share = st.outside / st.count
    msg = (f"Output {ol.name!r} is not a probability (its final activation is {ol.facts.activation or 'unknown'}"
           f"; values range over [{st.lo:.4g}, {st.hi:.4g}], {share:.1%} outside [0, 1]) but its loss, "
           f"{ol.spec.label}, expects probabilities (from_logits=False): Keras clips the values to [1e-7, 1 - 1e-7] "
           "before the log.")
    if k is not None and f is not None:
        msg += f" The loss is {k:.6g} as configured and {f:.6g} with from_logits=True."
    return [Finding("from-logits-mismatch", msg, magnitude=None if k is None or f is None else k - f,
                    subject=ol.name,
                    advice="Pass from_logits=True to the loss (the output is linear), or add a sigmoid/softmax "
                           "activation to the output layer.")]
