"""The sample-weight figures: an observer of the inference pass (no pass of its own)."""

from __future__ import annotations

import numpy as np

from losscheck.measurements.gaps import SampleWeightSummary
from losscheck.reference import EpochMean, output_batch_loss
from losscheck.reference.reduction import loss_values_and_mask, merge_masks
from losscheck.reference.weighting import weight_normalized


class SampleWeightStats:
    """Observer: the data loss with and without the sample weights, and normalized by them.

    normalized, per batch: sum_o lw_o * sum(w*l_o*m) / sum(w*m) over the output's loss elements (w
    broadcast to them as Keras's rank matching does, m the mask: 1 where no mask), batches weighted by
    size like Keras's loss; what reduction="mean_with_sample_weight" reports. Keras's own figure
    divides sum(w*l*m) by the count of unmasked elements instead."""

    def __init__(self, prober) -> None:
        self.prober = prober
        self.weighted, self.unweighted, self.normalized = EpochMean(), EpochMean(), EpochMean()
        self.per_element = False  # more than one weight per sample (e.g. per pixel)
        self.masked = False

    def __call__(self, b) -> None:
        if b.sample_weight is None:
            return
        p = self.prober
        unweighted = normalized = 0.0
        w = np.asarray(b.sample_weight, np.float64)
        if w.size > b.n:
            self.per_element = True
        for i, o in enumerate(p.outputs):
            spec = p.specs.get(o)
            if spec is None or o not in b.output_losses:
                continue
            lw = p.loaded.loss_weights[o]
            values, mask = b.values[i], b.masks[i]
            if values is None:  # the built-in formula's per-element losses, computed once for both figures
                values, own = loss_values_and_mask(spec, b.y[i], b.outputs[i], b.logits[i])
                mask = merge_masks(mask, own)
            unweighted += lw * output_batch_loss(spec, b.y[i], b.outputs[i], mask=mask, values=values)
            normalized += lw * weight_normalized(spec, b.y[i], b.outputs[i], w, mask, b.logits[i], values)
            self.masked = self.masked or b.masks[i] is not None
        self.weighted.add(b.data_loss, b.n)
        self.unweighted.add(unweighted, b.n)
        self.normalized.add(normalized, b.n)

    def summary(self) -> SampleWeightSummary | None:
        """The three figures, or None when no batch had sample weights."""
        if not self.weighted.count:
            return None
        return SampleWeightSummary(self.weighted.value, self.unweighted.value, self.normalized.value,
                                   self.per_element, self.masked)
