"""The per-sample form of a built-in loss that gives one value per batch (Dice/Tversky with their
default axis=None): the same loss over the feature axes only (axis=(1, ..., rank-1)), reduced and
averaged over batches as Keras does, on compare's inference pass. The loss-rank finding quotes the
gap between it and what Keras reports."""

from __future__ import annotations

import dataclasses

import numpy as np

from losscheck.core.taxonomy import BATCH_AXIS_DEFAULT_KINDS
from losscheck.probes.lossfn.outputs import OutputLoss
from losscheck.reference import EpochMean, output_batch_loss


def batch_level(ol: OutputLoss) -> bool:
    """A built-in loss that reduces over the batch axis as configured (axis=None)."""
    return ol.kind in BATCH_AXIS_DEFAULT_KINDS and ol.option("axis") is None


def feature_axes(rank: int) -> tuple[int, ...]:
    """Every axis but the batch axis."""
    return tuple(range(1, max(rank, 2)))


class PerSampleObserver:
    """Inference-pass observer: each batch-level loss with one value per sample instead."""

    def __init__(self, outputs: list[OutputLoss]) -> None:
        self.outputs = [ol for ol in outputs if batch_level(ol)]
        self.means = {ol.name: EpochMean() for ol in self.outputs}
        self.axes: dict[str, tuple[int, ...]] = {}
        self.failed: set[str] = set()

    def __call__(self, b) -> None:
        for ol in self.outputs:
            if ol.name in self.failed:
                continue
            p = np.asarray(b.outputs[ol.index])
            axes = self.axes.setdefault(ol.name, feature_axes(p.ndim))
            spec = dataclasses.replace(ol.spec, options={**ol.spec.options, "axis": list(axes)})
            try:
                value = output_batch_loss(spec, b.y[ol.index], p, sample_weight=b.sample_weight,
                                          mask=b.masks[ol.index])
            except Exception:  # noqa: BLE001 - a shape the reference cannot follow: the finding goes without it
                self.failed.add(ol.name)
                continue
            self.means[ol.name].add(value, b.n)

    def value(self, name: str) -> tuple[float, tuple[int, ...]] | None:
        """(the per-sample form's loss on the data, its axes), None when not measured."""
        m = self.means.get(name)
        if m is None or not m.count or name in self.failed:
            return None
        return float(m.value), self.axes[name]
