"""`batch-size-dependence` (warning): the same data, the same weights, two batch sizes: Keras's reported
(evaluate) loss should not move. With reduction="sum", a loss that reduces over the batch, masks or
mean_with_sample_weight it does; measure both values and report the ratio (and which outputs move)."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

from losscheck.findings import Finding
from losscheck.report.text import plural


@dataclass
class BatchSizeProbe:
    batch_size: int
    other_batch_size: int
    value: float
    other_value: float
    per_output: dict[str, tuple[float, float]]  # output -> (at batch_size, at other)
    samples: int | None = None  # measured on the first `samples` samples (None: all of them)

    @property
    def ratio(self) -> float:
        return self.other_value / self.value if self.value else float("nan")

    def as_section(self) -> dict:
        return {"batch_sizes": [self.batch_size, self.other_batch_size], "values": [self.value, self.other_value],
                "samples": self.samples,
                "ratio": self.ratio,
                "per_output": {o: {"values": list(v), "ratio": v[1] / v[0] if v[0] else None}
                               for o, v in self.per_output.items()}}


def other_batch_size(batch_size: int, n: int) -> int | None:
    """A second batch size that really changes the batching of n samples."""
    effective = min(batch_size, n)
    if effective >= 2:
        return max(1, effective // 2)
    return 2 if n >= 2 else None


#: The second batch size runs on at most this many samples (whole batches of both sizes): enough to
#: show a dependence, cheap on large data.
PROBE_SAMPLES = 512


def measure(ctx) -> BatchSizeProbe | None:
    """evaluate at the configured batch size and at half of it, on the same samples: all of them on
    small data, else the first PROBE_SAMPLES (rounded to whole batches), the configured batch size's
    values then coming from the batches compare's inference pass already measured."""
    from losscheck.probes import Prober
    from losscheck.reference import prefix_mean

    if getattr(ctx.data, "pipeline", False):  # a pipeline has one batching: its own
        return None
    inf = ctx.inference
    n = ctx.data.n
    b1 = ctx.config.batch_size
    b2 = other_batch_size(b1, n)
    if b2 is None or not math.isfinite(inf.evaluate):
        return None
    m = max(b1, (PROBE_SAMPLES // b1) * b1)
    if m >= n:
        other = Prober(ctx.loaded, ctx.data, b2, ctx.config.seed).inference_pass()
        per = {o: (v, other.output_loss.get(o, math.nan)) for o, v in inf.output_loss.items()}
        return BatchSizeProbe(b1, b2, inf.evaluate, other.evaluate, per)
    data = ctx.data
    subset = dataclasses.replace(data, x=[a[:m] for a in data.x], y=[a[:m] for a in data.y],
                                 sample_weight=None if data.sample_weight is None else data.sample_weight[:m],
                                 _handle=None)
    other = Prober(ctx.loaded, subset, b2, ctx.config.seed).inference_pass()
    sizes = [size for size, _ in inf.batch_totals]
    per = {o: (prefix_mean([(size, b.get(o, math.nan)) for size, b in zip(sizes, inf.batch_output_losses, strict=True)], m),
               other.output_loss.get(o, math.nan)) for o in inf.output_loss}
    value = prefix_mean(inf.batch_totals, m)
    return BatchSizeProbe(b1, b2, value, other.evaluate, per, samples=m)


def moved(a: float, b: float, rtol: float) -> bool:
    if not (math.isfinite(a) and math.isfinite(b)):
        return False
    return abs(a - b) > max(rtol, 1e-5) * max(abs(a), abs(b), 1e-12)


def cause(reduction: str | None, masked: bool, weighted: bool) -> str:
    """Why one output's batch loss depends on how the data is batched."""
    if reduction == "sum":
        return 'reduction="sum": each batch adds its per-sample losses instead of averaging them'
    if masked and reduction in ("sum_over_batch_size", "mean", "mean_with_sample_weight"):
        return "masked: each batch is divided by its own count of unmasked elements"
    if weighted and reduction == "mean_with_sample_weight":
        return "mean_with_sample_weight: each batch is divided by its own sum of weights"
    return "the loss mixes samples of a batch"


def check(probe: BatchSizeProbe, rtol: float, explained: dict[str, str], reductions: dict[str, str],
          masked: frozenset[str] = frozenset(), weighted: bool = False) -> list[Finding]:
    """explained: outputs whose loss function another finding (loss-rank) shows to reduce over the
    batch -> its code (named as the cause; the dependence is still reported here, measured);
    masked: outputs that carry a Keras mask; weighted: the data has sample weights."""
    if not moved(probe.value, probe.other_value, rtol):
        return []
    rest = [o for o, (a, b) in probe.per_output.items() if moved(a, b, rtol)]
    causes = {o: (f"its loss function reduces over the batch axis (see {explained[o]})" if o in explained
                  else cause(reductions.get(o), o in masked, weighted)) for o in rest}
    why = []
    for o in rest:
        a, b = probe.per_output[o]
        why.append(f"output {o!r}: {a:.6g} -> {b:.6g} (x{b / a:.4g}; {causes[o]})" if a else f"output {o!r}")
    on = f"the first {plural(probe.samples, 'sample')}" if probe.samples else "the same data"
    msg = (f"The reported loss depends on the batch size: {probe.value:.6g} at batch {probe.batch_size}, "
           f"{probe.other_value:.6g} at batch {probe.other_batch_size} on {on} and weights (ratio "
           f"{probe.ratio:.4g}).")
    if why:
        msg += " Moving: " + "; ".join(why) + "."
    if any(reductions.get(o) == "sum" for o in rest):
        advice = ('reduction="sum" adds the per-sample losses of each batch, so the loss (and the gradient scale) '
                  'grows with the batch size; use the default reduction="sum_over_batch_size".')
    elif rest and all(o in explained for o in rest):
        advice = ("The loss function mixes the samples of a batch (see loss-rank): return one value per sample "
                  "and let Keras average, then the loss no longer depends on the batch size.")
    elif rest and all(causes[o].startswith(("masked", "mean_with")) for o in rest):
        advice = ("This is how Keras normalizes per batch; compare losses only at one batch size (and "
                  "without shuffling), or weight batches by their valid count yourself.")
    else:
        advice = ("A loss whose value depends on how the data is batched mixes samples across the batch (a "
                  "reduction over axis 0, a division by the batch size, a batch statistic); make it per-sample "
                  "and let Keras average.")
    subject = rest[0] if len(rest) == 1 else None
    return [Finding("batch-size-dependence", msg, magnitude=probe.ratio, subject=subject,
                    between=None, advice=advice)]
