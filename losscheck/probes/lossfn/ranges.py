"""Output ranges of the crossentropy outputs over the data (are they probabilities? do rows sum to
1?) and the loss with from_logits as written vs flipped, measured by the numpy reference: the
evidence for a probabilities/logits mismatch."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from losscheck.measurements.lossfn import RangeRecord
from losscheck.probes.lossfn.outputs import OutputLoss
from losscheck.reference import EpochMean, LossSpec, output_batch_loss
from losscheck.reference.specs import CROSSENTROPY_KINDS


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

    def record(self) -> RangeRecord:
        keras = self.keras.value if self.keras.count and not self.failed else None
        flipped = self.flipped.value if self.flipped.count and not self.failed else None
        return RangeRecord(self.lo, self.hi, self.outside, self.count, self.row_dev, keras, flipped)


class RangeObserver:
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
