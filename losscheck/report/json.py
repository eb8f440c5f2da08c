"""--format json: schema_version 1 of the contract (full floats, stable key order).

The schema is written down in losscheck/schema/report.schema.json (see load_schema)."""

from __future__ import annotations

import functools
import json
import math
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from losscheck.report.model import Report


SCHEMA_VERSION = 1


def _clean(value: Any) -> Any:
    """JSON has no NaN/Inf: write them as null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    return value


def report_dict(report: Report) -> dict[str, Any]:
    out: dict[str, Any] = {"$schema": schema_id(), "schema_version": SCHEMA_VERSION, "command": report.command}
    summary = report.summary
    if summary:
        out["summary"] = summary
    out.update(report.header)
    if report.command == "compare" or report.figures:
        out["figures"] = {k: f.to_json() for k, f in report.ordered_figures()}
    out["findings"] = [f.to_json() for f in report.findings]
    for key, value in report.sections.items():
        out[key] = value
    out["gate"] = {
        "fail_on": report.fail_on,
        "max_gap": report.max_gap,
        "failing": [f.code for f in report.failing_findings()],
        "max_gap_breaches": [{"figure": name, "gap": gap} for name, gap in report.gap_breaches()],
    }
    out["exit_code"] = report.exit_code()
    return _clean(out)


def load_schema() -> dict[str, Any]:
    """The JSON Schema of this output, shipped in the package (losscheck/schema/report.schema.json)."""
    from importlib.resources import files

    return json.loads(files("losscheck").joinpath("schema").joinpath("report.schema.json").read_text(encoding="utf-8"))


@functools.cache
def schema_id() -> str:
    """The schema's `$id`, which every report names in its `$schema` key."""
    return str(load_schema()["$id"])


def render_json(report: Report) -> str:
    return json.dumps(report_dict(report), indent=2, allow_nan=False) + "\n"
