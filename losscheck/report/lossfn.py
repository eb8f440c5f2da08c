"""Table (rich) and markdown renderers of the report sections of the loss-function area and `inspect`:
reduction_trace, loss_config, training_layers, regularizers, check_notes. Registered in
losscheck/report/sections.py. Pure functions of plain data; no TensorFlow."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from rich.console import Group
from rich.text import Text

from losscheck.core.formatting import plural
from losscheck.core.text_safety import prose_for_markdown as _md
from losscheck.report.layout import Col, FitTable


def _shape(shape: Any) -> str:
    if shape is None:
        return ""
    if not shape:
        return "()"
    return "(" + ", ".join("batch" if d is None else str(d) for d in shape) + ("," if len(shape) == 1 else "") + ")"


def _num(v: Any) -> str:
    if v is None:
        return "n/a"
    if isinstance(v, float):
        return f"{v:.6g}"
    return str(v)


def _trace_rows(value: dict[str, Any]) -> list[tuple[str, str, str, str, str]]:
    rows = []
    for out, tr in (value.get("outputs") or {}).items():
        label = f"{out}: {tr.get('loss')}" + (f" ({tr['reduction']})" if tr.get("reduction") else "")
        for i, st in enumerate(tr.get("steps", [])):
            rows.append((label if i == 0 else "", st["step"], st["operation"], _shape(st.get("shape")),
                         _num(st.get("value"))))
    for st in value.get("total", []):
        rows.append(("model", st["step"], st["operation"], _shape(st.get("shape")), _num(st.get("value"))))
    return rows


def _probe_line(value: dict[str, Any]) -> str | None:
    p = value.get("batch_size_probe")
    if not p:
        return None
    (b1, b2), (v1, v2) = p["batch_sizes"], p["values"]
    n = p.get("samples")
    on = f"the first {plural(n, 'sample')} (a subset)" if n else "every sample"
    return (f"same data ({on}) at batch {b1}: {_num(v1)}, at batch {b2}: {_num(v2)} (ratio "
            f"{_num(p.get('ratio'))}; 1 means the reported loss is a per-sample mean, not a sum)")


def trace_table(value: dict[str, Any]):
    t = FitTable(f"Reduction trace (batch {value.get('batch_size')}, {plural(value.get('batches'), 'batch')}; "
                 "values are means over the data)",
                 [Col("output"), Col("step"), Col("operation", comfort=28), Col("shape", wrap=False),
                  Col("value", "right", wrap=False)], _trace_rows(value), key=2, expand=True)
    line = _probe_line(value)
    return Group(t, Text(line), Text("")) if line else t


def trace_markdown(value: dict[str, Any]) -> str:
    lines = [f"**Reduction trace** (batch {value.get('batch_size')}, {plural(value.get('batches'), 'batch')}; values "
             "are means over the data)", "", "| output | step | operation | shape | value |", "|---|---|---|---|---:|"]
    for row in _trace_rows(value):
        lines.append("| " + " | ".join(_md(c) for c in row) + " |")
    line = _probe_line(value)
    if line:
        lines += ["", _md(line)]
    return "\n".join(lines)


def _config_rows(value: dict[str, Any]) -> list[tuple[str, ...]]:
    rows: list[tuple[str, ...]] = []
    for out, c in value.items():
        opts = ", ".join(f"{k}={v}" for k, v in (c.get("options") or {}).items())
        loss = str(c.get("loss"))
        if c.get("kind") and c["kind"] != loss:
            loss += f" ({c['kind']})"
        rows.append((out, loss, str(c.get("reduction")), opts, _num(c.get("loss_weight")),
                     _shape(c.get("output_shape")), str(c.get("final_activation") or "unknown"),
                     "" if c.get("feature_axis") is None else str(c.get("feature_axis"))))
    return rows


CONFIG_HEAD = ("output", "loss", "reduction", "options", "weight", "output shape", "activation", "feature axis")


def loss_config_table(value: dict[str, Any]):
    cols = [Col(h, "right" if h == "weight" else "left", wrap=h not in ("output shape", "weight"))
            for h in CONFIG_HEAD]
    return FitTable("Loss configuration", cols, _config_rows(value))


def loss_config_markdown(value: dict[str, Any]) -> str:
    lines = ["**Loss configuration**", "", "| " + " | ".join(CONFIG_HEAD) + " |", "|" + "---|" * len(CONFIG_HEAD)]
    for row in _config_rows(value):
        lines.append("| " + " | ".join(_md(c) for c in row) + " |")
    return "\n".join(lines)


FAMILY_TEXT = {"dropout": "Dropout family (active in fit only)", "batchnorm": "BatchNormalization (batch statistics "
               "in fit)", "frozen_batchnorm": "frozen BatchNormalization (moving statistics everywhere)",
               "noise": "noise / augmentation (active in fit only)",
               "custom": "other layers whose call() takes `training` (custom training behaviour)"}


def training_layers_table(value: dict[str, list[str]]):
    rows = [(FAMILY_TEXT.get(fam, fam), ", ".join(names) if names else "none") for fam, names in value.items()]
    return FitTable("Training-dependent layers", [Col("family"), Col("layers")], rows)


def training_layers_markdown(value: dict[str, list[str]]) -> str:
    lines = ["**Training-dependent layers**", "", "| family | layers |", "|---|---|"]
    for fam, names in value.items():
        lines.append(f"| {_md(FAMILY_TEXT.get(fam, fam))} | {_md(', '.join(names) if names else 'none')} |")
    return "\n".join(lines)


def _reg_rows(value: list[dict[str, Any]]) -> list[tuple[str, str, str, str]]:
    return [(r["layer"], r["attribute"], r["regularizer"], "yes" if r.get("counted") else
             "no (frozen layer: Keras 3 drops it)") for r in value]


def regularizers_table(value: list[dict[str, Any]]):
    return FitTable("Regularizers", [Col(h) for h in ("layer", "on", "regularizer", "in the loss")],
                    _reg_rows(value))


def regularizers_markdown(value: list[dict[str, Any]]) -> str:
    lines = ["**Regularizers**", "", "| layer | on | regularizer | in the loss |", "|---|---|---|---|"]
    for row in _reg_rows(value):
        lines.append("| " + " | ".join(_md(c) for c in row) + " |")
    return "\n".join(lines)


def notes_table(value: list[str]):
    return Text("\n".join(f"note: {n}" for n in value))


def notes_markdown(value: list[str]) -> str:
    return "\n".join(f"- note: {_md(n)}" for n in value)


TABLE: dict[str, Callable[[Any], Any]] = {
    "reduction_trace": trace_table, "loss_config": loss_config_table, "training_layers": training_layers_table,
    "regularizers": regularizers_table, "check_notes": notes_table}
MARKDOWN: dict[str, Callable[[Any], str]] = {
    "reduction_trace": trace_markdown, "loss_config": loss_config_markdown,
    "training_layers": training_layers_markdown, "regularizers": regularizers_markdown,
    "check_notes": notes_markdown}
