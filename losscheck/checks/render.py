"""Table (rich) and markdown renderers of the report sections the checks and `inspect` write:
reduction_trace, loss_config, training_layers, regularizers, check_notes. Registered in
losscheck/report/sections.py. Pure functions of plain data; no TensorFlow."""

from __future__ import annotations

from typing import Any

from rich import box
from rich.console import Group
from rich.table import Table
from rich.text import Text

from losscheck.text_safety import prose_for_markdown as _md


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
        label = f"{out}: {tr.get('loss')}"
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
    return (f"same data at batch {b1}: {_num(v1)}, at batch {b2}: {_num(v2)} (ratio {_num(p.get('ratio'))}; "
            "1 means the reported loss is a per-sample mean, not a sum)")


def trace_table(value: dict[str, Any]):
    t = Table(title=f"Reduction trace (batch {value.get('batch_size')}, {value.get('batches')} batches; values are "
                    "means over the data)", box=box.SIMPLE, expand=True)
    t.add_column("output", overflow="fold")
    t.add_column("step", overflow="fold")
    t.add_column("operation", ratio=1, overflow="fold")
    t.add_column("shape", overflow="fold")
    t.add_column("value", justify="right", overflow="fold")
    for row in _trace_rows(value):
        t.add_row(*row)
    line = _probe_line(value)
    return Group(t, Text(line)) if line else t


def trace_markdown(value: dict[str, Any]) -> str:
    lines = [f"**Reduction trace** (batch {value.get('batch_size')}, {value.get('batches')} batches; values are means "
             "over the data)", "", "| output | step | operation | shape | value |", "|---|---|---|---|---:|"]
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
        rows.append((out, str(c.get("loss")), str(c.get("reduction")), opts, _num(c.get("loss_weight")),
                     _shape(c.get("output_shape")), str(c.get("final_activation") or "unknown"),
                     "" if c.get("feature_axis") is None else str(c.get("feature_axis"))))
    return rows


CONFIG_HEAD = ("output", "loss", "reduction", "options", "weight", "output shape", "activation", "feature axis")


def loss_config_table(value: dict[str, Any]):
    t = Table(title="Loss configuration", box=box.SIMPLE, expand=True)
    for h in CONFIG_HEAD:
        t.add_column(h, overflow="fold", min_width=19 if h == "reduction" else None)
    for row in _config_rows(value):
        t.add_row(*row)
    return t


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
    t = Table(title="Training-dependent layers", box=box.SIMPLE, expand=True)
    t.add_column("family", overflow="fold")
    t.add_column("layers", ratio=1, overflow="fold")
    for fam, names in value.items():
        t.add_row(FAMILY_TEXT.get(fam, fam), ", ".join(names) if names else "none")
    return t


def training_layers_markdown(value: dict[str, list[str]]) -> str:
    lines = ["**Training-dependent layers**", "", "| family | layers |", "|---|---|"]
    for fam, names in value.items():
        lines.append(f"| {_md(FAMILY_TEXT.get(fam, fam))} | {_md(', '.join(names) if names else 'none')} |")
    return "\n".join(lines)


def _reg_rows(value: list[dict[str, Any]]) -> list[tuple[str, str, str, str]]:
    return [(r["layer"], r["attribute"], r["regularizer"], "yes" if r.get("counted") else
             "no (frozen layer: Keras 3 drops it)") for r in value]


def regularizers_table(value: list[dict[str, Any]]):
    t = Table(title="Regularizers", box=box.SIMPLE, expand=True)
    for h in ("layer", "on", "regularizer", "in the loss"):
        t.add_column(h, overflow="fold")
    for row in _reg_rows(value):
        t.add_row(*row)
    return t


def regularizers_markdown(value: list[dict[str, Any]]) -> str:
    lines = ["**Regularizers**", "", "| layer | on | regularizer | in the loss |", "|---|---|---|---|"]
    for row in _reg_rows(value):
        lines.append("| " + " | ".join(_md(c) for c in row) + " |")
    return "\n".join(lines)


def notes_table(value: list[str]):
    return Text("\n".join(f"note: {n}" for n in value))


def notes_markdown(value: list[str]) -> str:
    return "\n".join(f"- note: {_md(n)}" for n in value)


TABLE = {"reduction_trace": trace_table, "loss_config": loss_config_table, "training_layers": training_layers_table,
         "regularizers": regularizers_table, "check_notes": notes_table}
MARKDOWN = {"reduction_trace": trace_markdown, "loss_config": loss_config_markdown,
            "training_layers": training_layers_markdown, "regularizers": regularizers_markdown,
            "check_notes": notes_markdown}
