"""Table (rich) and markdown renderers of the `validation` and `history` sections (compare --val /
--validation-split / --history). Pure functions of plain data; registered in report/sections.py."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from rich import box
from rich.console import Group
from rich.table import Table
from rich.text import Text


def _num(v: Any, signed: bool = False) -> str:
    if v is None:
        return "n/a"
    return f"{v:+.6g}" if signed else f"{v:.6g}"


def _decomposition_rows(value: dict[str, Any]) -> list[tuple[str, ...]]:
    dec = value.get("decomposition") or {}
    return [(("" if i == 0 else "  ") + k, _num(v, True)) for i, (k, v) in enumerate(dec.items())]


def _class_rows(value: dict[str, Any]) -> list[tuple[str, ...]]:
    rows = value.get("per_class_gap") or []
    several = len({r["output"] for r in rows}) > 1
    return [(f"{r['class']} ({r['output']})" if several else str(r["class"]),
             _num(r.get("loss_train")), _num(r.get("loss_val")), _num(r["gap"], True)) for r in rows]


def validation_table(value: dict[str, Any]):
    parts: list[Any] = []
    rows = _decomposition_rows(value)
    if rows:
        t = Table(title="Training vs validation: fit_epoch - evaluate_val", box=box.SIMPLE, title_justify="left")
        t.add_column("cause", overflow="fold")
        t.add_column("size", justify="right", overflow="fold")
        for row in rows:
            t.add_row(*row)
        parts.append(t)
    classes = _class_rows(value)
    if classes:
        c = Table(title="Generalization gap per class (contribution on training minus on validation data)",
                  box=box.SIMPLE, title_justify="left")
        for name in ("class", "loss (train)", "loss (val)", "gap"):
            c.add_column(name, justify="left" if name == "class" else "right", overflow="fold")
        for row in classes:
            c.add_row(*row)
        parts.append(c)
    return Group(*parts) if parts else Text("")


def history_table(value: dict[str, Any]):
    t = Table(title=f"Logged history ({value.get('format')}: {value.get('path')}); matched epoch: "
                    f"{value.get('matched_epoch') if value.get('matched_epoch') is not None else 'none'}",
              box=box.SIMPLE, title_justify="left")
    t.add_column("epoch", justify="right")
    t.add_column("loss", justify="right")
    t.add_column("val_loss", justify="right")
    t.add_column("", overflow="fold")
    val = value.get("val_loss")
    for i, epoch in enumerate(value.get("epochs") or []):
        mark = []
        if epoch == value.get("matched_epoch"):
            mark.append("← the model's weights")
        if epoch == value.get("best_epoch"):
            mark.append("lowest val_loss")
        t.add_row(str(epoch), _num(value["loss"][i]), _num(val[i]) if val else "", "; ".join(mark))
    return t


def validation_markdown(value: dict[str, Any]) -> str:
    lines = []
    rows = _decomposition_rows(value)
    if rows:
        lines += ["**Training vs validation** (`fit_epoch - evaluate_val`)", "", "| cause | size |", "|---|---:|"]
        lines += [f"| {label.replace('  ', '&nbsp;&nbsp;')} | {size} |" for label, size in rows]
        lines.append("")
    classes = _class_rows(value)
    if classes:
        lines += ["| class | loss (train) | loss (val) | gap |", "|---|---:|---:|---:|"]
        lines += ["| " + " | ".join(r) + " |" for r in classes]
        lines.append("")
    return "\n".join(lines)


def history_markdown(value: dict[str, Any]) -> str:
    matched = value.get("matched_epoch")
    lines = [f"**Logged history** ({value.get('format')}), matched epoch: {matched if matched is not None else 'none'}",
             "", "| epoch | loss | val_loss | |", "|---:|---:|---:|---|"]
    val = value.get("val_loss")
    for i, epoch in enumerate(value.get("epochs") or []):
        mark = "← the model's weights" if epoch == matched else ""
        lines.append(f"| {epoch} | {_num(value['loss'][i])} | {_num(val[i]) if val else ''} | {mark} |")
    return "\n".join(lines) + "\n"


TABLE: dict[str, Callable[[Any], Any]] = {"validation": validation_table, "history": history_table}
MARKDOWN: dict[str, Callable[[Any], str]] = {"validation": validation_markdown, "history": history_markdown}
