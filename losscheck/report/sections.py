"""Renderers for command-specific report sections (Report.sections[key]), per human format.

JSON writes every section as it is (plain data). Table and markdown look the key up here; a section
without a renderer is skipped in those formats. Register new ones at the bottom:
  TABLE[key] = fn(value) -> rich renderable      MARKDOWN[key] = fn(value) -> str
The table console renders with markup and emoji off (a message like "[eps, 1-eps]" must print as it
is): style with rich Text/Style objects, not "[bold]" strings. Build tables with
losscheck.report.layout.FitTable, which fits any width without splitting a word or dropping a column.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

TABLE: dict[str, Callable[[Any], Any]] = {}
MARKDOWN: dict[str, Callable[[Any], str]] = {}

# breakdown: total, identity, per_class, per_output, regularization, per_sample, distribution
from losscheck.report.breakdown import MARKDOWN_RENDERERS as _BREAKDOWN_MD  # noqa: E402
from losscheck.report.breakdown import TABLE_RENDERERS as _BREAKDOWN_TABLE  # noqa: E402

TABLE.update(_BREAKDOWN_TABLE)
MARKDOWN.update(_BREAKDOWN_MD)

# loss-function checks and inspect: reduction_trace, loss_config, training_layers, regularizers, check_notes
from losscheck.report.lossfn import MARKDOWN as _CHECKS_MD  # noqa: E402
from losscheck.report.lossfn import TABLE as _CHECKS_TABLE  # noqa: E402

TABLE.update(_CHECKS_TABLE)
MARKDOWN.update(_CHECKS_MD)

# training vs validation and the logged history: validation, history
from losscheck.report.validation import MARKDOWN as _VALIDATION_MD  # noqa: E402
from losscheck.report.validation import TABLE as _VALIDATION_TABLE  # noqa: E402

TABLE.update(_VALIDATION_TABLE)
MARKDOWN.update(_VALIDATION_MD)
# compiled metrics: metrics, per_class_metrics
from losscheck.report.metrics import MARKDOWN as _METRICS_MD  # noqa: E402
from losscheck.report.metrics import TABLE as _METRICS_TABLE  # noqa: E402

TABLE.update(_METRICS_TABLE)
MARKDOWN.update(_METRICS_MD)
