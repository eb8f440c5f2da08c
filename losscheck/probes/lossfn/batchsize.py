"""Batch-size rerun: the same data, the same weights, two batch sizes. Keras's reported (evaluate)
loss should not move; with reduction="sum", a loss that reduces over the batch, masks or
mean_with_sample_weight it does. Measures both values, in total and per output."""

from __future__ import annotations

import dataclasses
import math

from losscheck.measurements import frozen_mapping
from losscheck.measurements.lossfn import BatchSizeRecord


def other_batch_size(batch_size: int, n: int) -> int | None:
    """A second batch size that really changes the batching of n samples."""
    effective = min(batch_size, n)
    if effective >= 2:
        return max(1, effective // 2)
    return 2 if n >= 2 else None


#: The second batch size runs on at most this many samples (whole batches of both sizes): enough to
#: show a dependence, cheap on large data.
PROBE_SAMPLES = 512


def measure(loaded, data, batch_size: int, seed: int, inf) -> BatchSizeRecord | None:
    """evaluate at the configured batch size and at half of it, on the same samples: all of them on
    small data, else the first PROBE_SAMPLES (rounded to whole batches), the configured batch size's
    values then coming from the batches compare's inference pass already measured."""
    from losscheck.probes.prober import Prober
    from losscheck.reference import prefix_mean

    if data.pipeline:  # a pipeline has one batching: its own
        return None
    n = data.n
    b1 = batch_size
    b2 = other_batch_size(b1, n)
    if b2 is None or not math.isfinite(inf.evaluate):
        return None
    m = max(b1, (PROBE_SAMPLES // b1) * b1)
    if m >= n:
        other = Prober(loaded, data, b2, seed).inference_pass()
        per = {o: (v, other.output_loss.get(o, math.nan)) for o, v in inf.output_loss.items()}
        return BatchSizeRecord(b1, b2, inf.evaluate, other.evaluate, frozen_mapping(per))
    subset = dataclasses.replace(data, x=[a[:m] for a in data.x], y=[a[:m] for a in data.y],
                                 sample_weight=None if data.sample_weight is None else data.sample_weight[:m],
                                 _handle=None)
    other = Prober(loaded, subset, b2, seed).inference_pass()
    sizes = [size for size, _ in inf.batch_totals]
    batches = list(zip(sizes, inf.batch_output_losses, strict=True))
    per = {o: (prefix_mean([(size, b.get(o, math.nan)) for size, b in batches], m),
               other.output_loss.get(o, math.nan)) for o in inf.output_loss}
    value = prefix_mean(inf.batch_totals, m)
    return BatchSizeRecord(b1, b2, value, other.evaluate, frozen_mapping(per), samples=m)
