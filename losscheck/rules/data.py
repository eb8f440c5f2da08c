"""Rules of the data area (see losscheck.rules): facts about the data source."""

from __future__ import annotations

from losscheck.core.finding import Finding
from losscheck.measurements import Measurements
from losscheck.rules import rule


@rule("shuffled-data")
def shuffled_data(m: Measurements) -> list[Finding]:
    """A pipeline that gave its samples in a different order on different passes."""
    d = m.data
    if d is None or not d.pipeline or not d.shuffled:
        return []
    return [Finding(
        "shuffled-data",
        f"The data pipeline {d.path} gives its samples in a different order on each pass (it shuffles): "
        "fit_epoch, the training-mode figures and evaluate each averaged differently composed batches, so "
        "batch-dependent effects (a partial last batch, BatchNormalization batch statistics, masks, sample "
        "weights) differ between them as well.",
        advice="For an exact comparison pass the pipeline without .shuffle() (or with "
               "reshuffle_each_iteration=False); shuffle only the training pipeline.")]
