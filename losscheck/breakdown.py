"""`losscheck breakdown`: per-class, per-output and per-sample decomposition (issue 5)."""

from __future__ import annotations

from collections.abc import Callable

from losscheck.config import Config
from losscheck.errors import UsageError
from losscheck.findings import Report


def run_breakdown(cfg: Config, mode: str, top: int, progress: Callable[[str], None] = lambda _m: None) -> Report:
    raise UsageError(f"breakdown --{mode.replace('_', '-')} is not implemented yet")
