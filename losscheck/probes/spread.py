"""The spread of the random families' effects over extra random draws, measured only when a size lies
near the --rtol threshold (so whether it is reported could depend on the draw)."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping

import numpy as np

from losscheck.core.significance import scale_of
from losscheck.decomposition import base_name
from losscheck.reference import prefix_mean

#: extra random draws for the spread of the random families' figures
EXTRA_DRAWS = 2
#: re-measure only when a size lies within this factor of the --rtol threshold (either side)
NEAR = 10.0
#: the draws run on at most this many leading samples (whole batches); the spread is scaled to the
#: samples of the main figures as 1/sqrt(samples)
SPREAD_SAMPLES = 256


def random_spread(figures: Mapping[str, float], rtol: float, prober, passes: dict, main_batches: list, inf,
                  limit: int | None, progress: Callable[[str], None]) -> dict[str, float]:
    """Standard deviation over 1 + EXTRA_DRAWS random draws of each random family's effect
    (train_mode_<family>_only - base, keyed by figure) and of the interaction (key "interaction").
    Measured only when a random family exists and one of those sizes is near the threshold
    rtol * |evaluate|, on the first SPREAD_SAMPLES samples; {} otherwise, with no extra pass."""
    fam = prober.families
    random = [f for f in fam.STOCHASTIC if getattr(fam, f)]
    main_base = figures.get(base_name(figures))
    if not random or main_base is None or None not in passes:
        return {}
    present = [f for f in fam.NAMES if getattr(fam, f)]
    threshold = rtol * scale_of(figures.get("evaluate"))

    def sizes(values: dict, base: float) -> dict[str, float]:
        out = {f"train_mode_{f}_only": values[f] - base for f in random if f in values}
        out["interaction"] = (values[None] - base) - sum(values[f] - base for f in present if f in values)
        return out

    if not any(threshold / NEAR <= abs(v) <= threshold * NEAR for v in sizes(passes, main_base).values()):
        return {}
    main = limit if limit is not None else prober.data.n
    batch = prober.batch_size
    whole = (main // batch) * batch  # whole batches, so the inference pass's batches give the base
    sub = min(whole, math.ceil(SPREAD_SAMPLES / batch) * batch) if whole else main
    progress(f"training-mode passes with {EXTRA_DRAWS} more random draws on {sub} samples (sizes near --rtol)")
    variants = [None, *present]
    # the first draw is the main pass's, on its leading batches
    first = {f: prefix_mean([(n, b[f]) for n, b in main_batches], sub) for f in variants}
    draws = []
    for k in range(EXTRA_DRAWS + 1):
        values = first if k == 0 else prober.training_passes(variants, None, None if sub >= prober.data.n else sub,
                                                             draw=k)
        base = main_base if sub == main else prefix_mean(inf.batch_totals, sub)
        draws.append(sizes(values, base))
    scale = math.sqrt(sub / main)
    return {key: float(np.std([d[key] for d in draws], ddof=1)) * scale for key in draws[0]}
