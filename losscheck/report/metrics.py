"""Table (rich) and markdown renderers of the `metrics` and `per_class_metrics` report sections.
Registered in losscheck/report/sections.py. Pure functions of plain data; no TensorFlow."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from rich import box
from rich.table import Table

from losscheck.report.layout import Col, FitTable


def _value(v: Any) -> str:
    if v is None:
        return "n/a"
    if isinstance(v, list):
        return "[" + ", ".join(_value(x) for x in v) + "]"
    if isinstance(v, float):
        return f"{v:.6g}"
    return str(v)


def _agree(row: dict[str, Any]) -> str:
    ev, ma = row.get("evaluate"), row.get("manual")
    if ma is None:
        return row.get("reason") or "not recomputed"
    a = ev if isinstance(ev, list) else [ev]
    b = ma if isinstance(ma, list) else [ma]
    if len(a) != len(b) or any(x is None or y is None for x, y in zip(a, b, strict=False)):
        return "differs"
    ok = all(abs(x - y) <= 1e-4 * max(abs(x), 1e-12) + 1e-7 for x, y in zip(a, b, strict=True))
    return "agrees" if ok else f"differs by {_value([x - y for x, y in zip(a, b, strict=True)])}"


def _what(row: dict[str, Any]) -> str:
    return f"{row.get('metric', '')} on {row.get('output', '')}" + (" (weighted)" if row.get("weighted") else "")


def metrics_table(value: dict[str, dict[str, Any]]):
    rows = [(name, _value(row.get("evaluate")), _value(row.get("manual")), f"{_what(row)}; {_agree(row)}")
            for name, row in value.items()]
    return FitTable("Metrics (evaluate: Keras's value; manual: losscheck's numpy recomputation)",
                    [Col("metric"), Col("evaluate", "right"), Col("manual", "right"), Col("what it is", comfort=24)],
                    rows)


def metrics_markdown(value: dict[str, dict[str, Any]]) -> str:
    lines = ["#### Metrics", "", "| metric | evaluate | manual | what it is |", "|---|---:|---:|---|"]
    for name, row in value.items():
        text = f"{_what(row)}; {_agree(row)}".replace("|", "\\|")
        lines.append(f"| `{name}` | {_value(row.get('evaluate'))} | {_value(row.get('manual'))} | {text} |")
    return "\n".join(lines) + "\n"


def _per_class_columns(rows: list[dict[str, Any]]) -> list[str]:
    cols: list[str] = []
    for r in rows:
        cols += [k for k in r if k not in ("output", "class") and k not in cols]
    return cols


def per_class_metrics_table(rows: list[dict[str, Any]]):
    cols = _per_class_columns(rows)
    t = Table(title="Metrics per class", box=box.SIMPLE, expand=True)
    t.add_column("output", overflow="fold")
    t.add_column("class", justify="right", overflow="fold")
    for c in cols:
        t.add_column(c, justify="right", overflow="fold")
    for r in rows:
        t.add_row(str(r["output"]), str(r["class"]), *[_value(r.get(c)) for c in cols])
    return t


def per_class_metrics_markdown(rows: list[dict[str, Any]]) -> str:
    cols = _per_class_columns(rows)
    lines = ["#### Metrics per class", "", "| output | class | " + " | ".join(f"`{c}`" for c in cols) + " |",
             "|---|---:|" + "---:|" * len(cols)]
    for r in rows:
        lines.append(f"| {r['output']} | {r['class']} | " + " | ".join(_value(r.get(c)) for c in cols) + " |")
    return "\n".join(lines) + "\n"


TABLE: dict[str, Callable[[Any], Any]] = {"metrics": metrics_table, "per_class_metrics": per_class_metrics_table}
MARKDOWN: dict[str, Callable[[Any], str]] = {"metrics": metrics_markdown,
                                             "per_class_metrics": per_class_metrics_markdown}
