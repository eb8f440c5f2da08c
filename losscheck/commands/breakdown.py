"""`losscheck breakdown`: per-class, per-output and per-sample decomposition: load -> measure
(probes.breakdown) -> judge (rules) -> Report. The rows add back up to the data loss; the data loss
plus the penalties is what `evaluate` reports."""

from __future__ import annotations

from collections.abc import Callable

from losscheck.core.config import Config
from losscheck.core.errors import UsageError
from losscheck.report.model import Report

Progress = Callable[..., None]

MODES = ("per_class", "per_output", "per_sample")


def run_breakdown(cfg: Config, mode: str, top: int = 10, progress: Progress = lambda _m: None) -> Report:
    if mode not in MODES:
        raise UsageError(f"unknown breakdown mode {mode!r}; use --per-class, --per-output or --per-sample")
    from losscheck.commands.common import build_header
    from losscheck.loading.inputs import load_inputs
    from losscheck.probes.breakdown import measure_breakdown
    from losscheck.report.assemble import breakdown_report
    from losscheck.rules import judge

    loaded, data = load_inputs(cfg, progress)
    assert data is not None
    try:
        m = measure_breakdown(cfg, loaded, data, mode, top, progress)
        return breakdown_report(build_header(cfg, loaded, data), m, judge(m))
    finally:
        data.close()
