"""`losscheck inspect MODEL`: what can be said without data: load -> measure (probes.inspect: the loss
configuration per output, the training-dependent layers, the regularizers, the version that saved the
file) -> judge (rules; the ones that need data find nothing) -> Report."""

from __future__ import annotations

from collections.abc import Callable

from losscheck.commands.common import build_header
from losscheck.core.config import Config
from losscheck.report.model import Report


def run_inspect(cfg: Config, progress: Callable[[str], None] = lambda _m: None) -> Report:
    from losscheck.loading.inputs import load_inputs
    from losscheck.probes.inspect import measure_inspect
    from losscheck.report.assemble import inspect_report
    from losscheck.rules import judge

    loaded, _ = load_inputs(cfg, progress)
    header = build_header(cfg, loaded)
    m = measure_inspect(cfg, loaded, progress)
    return inspect_report(header, m, judge(m))
