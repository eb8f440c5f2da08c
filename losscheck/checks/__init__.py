"""Loss-function checks (issue 4): rank/batch-axis probe, batch-size dependence, channels-first axis,
from_logits mismatch, non-finite values, label smoothing, reduction trace.

Hooks called by compare/inspect:
  static_checks(loaded)            -> findings that need no data (inspect and compare)
  data_checks(ctx)                 -> findings (+ report sections) that need data (compare)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from losscheck.findings import Finding


@dataclass
class CheckContext:
    """What data-dependent checks may use: the loaded model, the data, the prober (to run passes), the
    inference result and the config. Checks add report sections into `sections`."""

    loaded: Any
    data: Any
    prober: Any
    inference: Any
    config: Any
    sections: dict[str, Any] = field(default_factory=dict)


def static_checks(loaded) -> list[Finding]:
    return []


def data_checks(ctx: CheckContext) -> list[Finding]:
    return []
