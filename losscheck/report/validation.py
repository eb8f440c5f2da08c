"""Table (rich) and markdown renderers of the `validation` and `history` sections (compare --val /
--validation-split / --history). Pure functions of plain data; registered in report/sections.py."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from rich.console import Group
from rich.text import Text

from losscheck.report.layout import Col, FitTable


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


def _top(value: dict[str, Any]) -> str:
    """The gap the validation decomposition splits (`<fit> - evaluate_val`)."""
    return next(iter(value.get("decomposition") or {}), "fit_epoch - evaluate_val")


def _epoch_words(value: dict[str, Any]) -> str:
    """The epoch the weights are taken to be, and how it was chosen."""
    matched = value.get("matched_epoch")
    if matched is None:
        return "none"
    how = {"val_loss": "its val_loss matches evaluate_val", "fit_epoch": "the next epoch's loss matches fit_epoch",
           "last": "the last; assumed", "--epoch": "--epoch"}.get(value.get("chosen_by") or "")
    return f"{matched} ({how})" if how else str(matched)


def validation_table(value: dict[str, Any]):
    parts: list[Any] = []
    rows = _decomposition_rows(value)
    if rows:
        parts.append(FitTable(f"Training vs validation: {_top(value)}",
                              [Col("cause"), Col("size", "right", wrap=False)], rows))
    classes = _class_rows(value)
    if classes:
        parts.append(FitTable("Generalization gap per class (contribution on the training minus on the validation "
                              "data)", [Col("class", wrap=False), Col("loss (train)", "right", wrap=False),
                                        Col("loss (val)", "right", wrap=False), Col("gap", "right", wrap=False)],
                              classes))
    return Group(*parts) if parts else Text("")


def _marks(value: dict[str, Any], epoch: int) -> list[str]:
    """What an epoch row of the history section is marked with: the matched epoch, the best one."""
    mark = []
    if epoch == value.get("matched_epoch"):
        mark.append("← the model's weights")
    if epoch == value.get("best_epoch"):
        mark.append("lowest val_loss")
    return mark


def history_table(value: dict[str, Any]):
    val = value.get("val_loss")
    rows = []
    for i, epoch in enumerate(value.get("epochs") or []):
        rows.append((str(epoch), _num(value["loss"][i]), _num(val[i]) if val else "", "; ".join(_marks(value, epoch))))
    return FitTable(f"Logged history ({value.get('format')}: {value.get('path')}); the weights' epoch: "
                    f"{_epoch_words(value)}",
                    [Col("epoch", "right", wrap=False), Col("loss", "right", wrap=False),
                     Col("val_loss", "right", wrap=False), Col("")], rows)


def validation_markdown(value: dict[str, Any]) -> str:
    lines = []
    rows = _decomposition_rows(value)
    if rows:
        lines += [f"**Training vs validation** (`{_top(value)}`)", "", "| cause | size |", "|---|---:|"]
        lines += [f"| {label.replace('  ', '&nbsp;&nbsp;')} | {size} |" for label, size in rows]
        lines.append("")
    classes = _class_rows(value)
    if classes:
        lines += ["| class | loss (train) | loss (val) | gap |", "|---|---:|---:|---:|"]
        lines += ["| " + " | ".join(r) + " |" for r in classes]
        lines.append("")
    return "\n".join(lines)


def history_markdown(value: dict[str, Any]) -> str:
    lines = [f"**Logged history** ({value.get('format')}), the weights' epoch: {_epoch_words(value)}",
             "", "| epoch | loss | val_loss | |", "|---:|---:|---:|---|"]
    val = value.get("val_loss")
    for i, epoch in enumerate(value.get("epochs") or []):
        mark = "; ".join(_marks(value, epoch))
        lines.append(f"| {epoch} | {_num(value['loss'][i])} | {_num(val[i]) if val else ''} | {mark} |")
    return "\n".join(lines) + "\n"


def _shard_rows(value: list[dict[str, Any]]) -> list[tuple[str, ...]]:
    return [(str(s["process"]), str(s["samples"]), str(s["steps"]), _num(s.get("loss_sum")), _num(s.get("weight_sum")))
            for s in value]


_SHARD_HEADERS = ("process", "samples", "steps", "loss_sum", "weight_sum")


def shards_table(value: list[dict[str, Any]]):
    """--distribute multi-process: each process's shard and its numpy sums."""
    return FitTable("Shards (--distribute multi-process: each process's samples and numpy sums)",
                    [Col(h, "left" if i == 0 else "right", wrap=False) for i, h in enumerate(_SHARD_HEADERS)],
                    _shard_rows(value))


def shards_markdown(value: list[dict[str, Any]]) -> str:
    lines = ["**Shards** (`--distribute multi-process`)", "", "| " + " | ".join(_SHARD_HEADERS) + " |",
             "|---|---:|---:|---:|---:|"]
    lines += ["| " + " | ".join(r) + " |" for r in _shard_rows(value)]
    return "\n".join(lines) + "\n"


TABLE: dict[str, Callable[[Any], Any]] = {"validation": validation_table, "history": history_table,
                                          "shards": shards_table}
MARKDOWN: dict[str, Callable[[Any], str]] = {"validation": validation_markdown, "history": history_markdown,
                                             "shards": shards_markdown}
