"""Table (rich) and markdown renderers for the sections of `losscheck breakdown`: total, identity,
per_class, per_output, regularization, per_sample, distribution. Registered in report/sections.py."""

from __future__ import annotations

from typing import Any

from rich import box
from rich.console import Group
from rich.table import Table
from rich.text import Text

from losscheck.report.text import sig
from losscheck.text_safety import prose_for_markdown as _md

BLOCKS = " ▏▎▍▌▋▊▉█"
BAR_WIDTH = 24


def bar_text(fraction: float | None, width: int = BAR_WIDTH) -> str:
    """A horizontal bar of `width` cells for a fraction in [0, 1] (eighth-cell resolution)."""
    if fraction is None or fraction != fraction:
        return ""
    eighths = int(round(max(0.0, min(1.0, fraction)) * width * 8))
    full, part = divmod(eighths, 8)
    return "█" * full + (BLOCKS[part] if part else "")


def _md_bar(fraction: float | None) -> str:
    text = bar_text(fraction, 20)
    return f"`{text}`" if text else ""


def _pct(x: float | None) -> str:
    return "" if x is None else f"{100 * x:.3g}%"


def _num(x: float | None, digits: int = 4) -> str:
    return "" if x is None else sig(x, digits)


def _bar(fraction: float | None, width: int = BAR_WIDTH) -> Text:
    return Text(bar_text(fraction, width).ljust(width), style="cyan")


def _multi(rows: list[dict[str, Any]]) -> bool:
    return len({r.get("output") for r in rows}) > 1


# -- per class ------------------------------------------------------------------------------------
def _class_columns(rows: list[dict[str, Any]]) -> list[tuple[str, Any]]:
    cols: list[tuple[str, Any]] = []
    if _multi(rows):
        cols.append(("output", lambda r: str(r["output"])))
    cols += [("class", lambda r: str(r["class"])),
             ("loss", lambda r: _num(r["loss"], 3)),
             ("share", lambda r: _pct(r.get("share"))),
             ("count", lambda r: str(r.get("count", ""))),
             ("prev.", lambda r: _pct(r.get("prevalence")))]
    if any("loss_positives" in r for r in rows):
        cols += [("loss+", lambda r: _num(r.get("loss_positives"), 3)),
                 ("loss-", lambda r: _num(r.get("loss_negatives"), 3))]
    if any("recall" in r for r in rows):
        cols.append(("recall", lambda r: _pct(r.get("recall"))))
    if any("iou" in r for r in rows):
        cols.append(("IoU", lambda r: _pct(r.get("iou"))))
    if any(r.get("kind") == "true_class" and "precision" in r for r in rows):
        cols.append(("prec.", lambda r: _pct(r.get("precision")) if r.get("kind") == "true_class" else ""))
    return cols


#: more rows than this: the table shows the classes with the highest loss first, and says so
MAX_TABLE_ROWS = 60


def _shown(rows: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], str]:
    if len(rows) <= MAX_TABLE_ROWS:
        return rows, ""
    worst = sorted(rows, key=lambda r: -(r.get("loss") or 0.0))[:MAX_TABLE_ROWS]
    return worst, (f"{len(rows)} classes: the {MAX_TABLE_ROWS} with the highest loss are shown, highest first "
                   "(--format json has every row)")


def table_per_class(rows: list[dict[str, Any]]) -> Any:
    rows, caption = _shown(rows)
    t = Table(title="Loss per class (share of the total, bar)", box=box.SIMPLE_HEAVY, expand=False,
              caption=caption or None, padding=(0, 1))
    cols = _class_columns(rows)
    for name, _ in cols:
        if name == "output":
            t.add_column(name, overflow="fold")
        else:
            t.add_column(name, justify="left" if name == "class" else "right", no_wrap=True)
    t.add_column("", no_wrap=True)  # the share as a bar (the title says so)
    for r in rows:
        t.add_row(*[fn(r) for _, fn in cols], _bar(r.get("share"), 14))
    return t


def markdown_per_class(rows: list[dict[str, Any]]) -> str:
    rows, caption = _shown(rows)
    cols = _class_columns(rows)
    lines = ["**Loss per class**" + (f" ({caption})" if caption else ""), "", "| " + " | ".join(n for n, _ in cols) + " | share of loss |",
             "|" + "|".join("---" if n in ("output", "class") else "---:" for n, _ in cols) + "|---|"]
    for r in rows:
        lines.append("| " + " | ".join(_md(fn(r)) for _, fn in cols) + f" | {_md_bar(r.get('share'))} |")
    return "\n".join(lines)


# -- per output -----------------------------------------------------------------------------------
def _output_columns(rows: list[dict[str, Any]]) -> list[tuple[str, Any]]:
    cols: list[tuple[str, Any]] = [
        ("output", lambda r: str(r["output"])),
        ("loss (exact mean)", lambda r: _num(r["loss"], 6)),
        ("weight", lambda r: f"{r['weight']:g}"),
        ("weighted", lambda r: _num(r["weighted"], 6)),
        ("share", lambda r: _pct(r.get("share"))),
    ]
    if any("keras_log" in r for r in rows):
        cols += [("Keras log", lambda r: _num(r.get("keras_log"), 6)),
                 ("log - exact", lambda r: "" if r.get("keras_log_difference") is None
                  else sig(r["keras_log_difference"], 3, signed=True))]
    return cols


def table_per_output(rows: list[dict[str, Any]]) -> Table:
    t = Table(title="Loss per output", box=box.SIMPLE_HEAVY, expand=False)
    cols = _output_columns(rows)
    for name, _ in cols:
        t.add_column(name, justify="left" if name == "output" else "right", overflow="fold")
    t.add_column("share of total", no_wrap=True)
    for r in rows:
        t.add_row(*[fn(r) for _, fn in cols], _bar(r.get("share")))
    return t


def markdown_per_output(rows: list[dict[str, Any]]) -> str:
    cols = _output_columns(rows)
    lines = ["**Loss per output**", "", "| " + " | ".join(n for n, _ in cols) + " | share of total |",
             "|" + "|".join("---" if n == "output" else "---:" for n, _ in cols) + "|---|"]
    for r in rows:
        lines.append("| " + " | ".join(_md(fn(r)) for _, fn in cols) + f" | {_md_bar(r.get('share'))} |")
    return "\n".join(lines)


def table_regularization(reg: dict[str, Any]) -> Any:
    if not reg.get("layers"):
        return Text(f"Regularization: {sig(reg['total'])}")
    t = Table(title=f"Regularization: {sig(reg['total'])} ({_pct(reg.get('share'))} of the total)",
              box=box.SIMPLE, expand=False)
    for name in ("layer", "kind", "penalty", "share"):
        t.add_column(name, justify="right" if name in ("penalty", "share") else "left", overflow="fold")
    t.add_column("share of total", no_wrap=True)
    for r in reg.get("layers", []):
        t.add_row(str(r.get("layer") or "-"), r["kind"], sig(r["penalty"]), _pct(r.get("share")), _bar(r.get("share")))
    return t


def markdown_regularization(reg: dict[str, Any]) -> str:
    lines = [f"**Regularization**: {sig(reg['total'])} ({_pct(reg.get('share'))} of the total)"]
    if reg.get("layers"):
        lines += ["", "| layer | kind | penalty | share |", "|---|---|---:|---:|"]
        for r in reg["layers"]:
            lines.append(f"| {_md(r.get('layer') or '-')} | {_md(r['kind'])} | {sig(r['penalty'])} | "
                         f"{_pct(r.get('share'))} |")
    return "\n".join(lines)


# -- per sample -----------------------------------------------------------------------------------
def table_per_sample(rows: list[dict[str, Any]]) -> Table:
    t = Table(title=f"The {len(rows)} worst samples", box=box.SIMPLE_HEAVY, expand=True)
    t.add_column("rank", justify="right", no_wrap=True)
    t.add_column("index", justify="right", no_wrap=True)
    t.add_column("loss", justify="right", no_wrap=True)
    t.add_column("target", ratio=1, overflow="fold")
    t.add_column("prediction", ratio=1, overflow="fold")
    for i, r in enumerate(rows, 1):
        t.add_row(str(i), str(r["index"]), _num(r["loss"], 5), str(r.get("target", "")), str(r.get("prediction", "")))
    return t


def markdown_per_sample(rows: list[dict[str, Any]]) -> str:
    lines = [f"**The {len(rows)} worst samples**", "", "| rank | index | loss | target | prediction |",
             "|---:|---:|---:|---|---|"]
    for i, r in enumerate(rows, 1):
        tgt = _md(r.get("target", ""))
        pred = _md(r.get("prediction", ""))
        lines.append(f"| {i} | {r['index']} | {_num(r['loss'], 5)} | {tgt} | {pred} |")
    return "\n".join(lines)


def _quantile_line(dist: dict[str, Any]) -> str:
    q = dist.get("quantiles", {})
    parts = [f"min {sig(dist['min'], 4)}"] + [f"{k} {sig(v, 4)}" for k, v in q.items()] + [f"max {sig(dist['max'], 4)}"]
    return (f"{dist['count']} samples, mean {sig(dist['mean'], 5)}, std {sig(dist['std'], 4)}\n" + ", ".join(parts))


def _hist_rows(dist: dict[str, Any]) -> list[tuple[str, int, float]]:
    hist = dist.get("histogram") or {}
    # (log-spaced bins when the losses span more than three decades)
    edges, counts = hist.get("edges", []), hist.get("counts", [])
    top = max(counts, default=0) or 1
    return [(f"[{sig(edges[i], 4)}, {sig(edges[i + 1], 4)}{']' if i == len(counts) - 1 else ')'}", c, c / top)
            for i, c in enumerate(counts)]


def table_distribution(dist: dict[str, Any]) -> Any:
    if not dist.get("count"):
        return Text("no samples")
    scale = (dist.get("histogram") or {}).get("scale", "linear")
    t = Table(title="Distribution of per-sample losses" + (" (log-spaced bins)" if scale == "log" else ""),
              box=box.SIMPLE, expand=False)
    t.add_column("loss bin", no_wrap=True)
    t.add_column("samples", justify="right", no_wrap=True)
    t.add_column("", no_wrap=True)
    for label, count, frac in _hist_rows(dist):
        t.add_row(label, str(count), Text(bar_text(frac, 40), style="cyan"))
    return Group(Text(_quantile_line(dist)), t)


def markdown_distribution(dist: dict[str, Any]) -> str:
    if not dist.get("count"):
        return "No samples."
    lines = ["**Distribution of per-sample losses**", "", _quantile_line(dist).replace("\n", "; "), "", "```"]
    for label, count, frac in _hist_rows(dist):
        lines.append(f"{label:>24} {count:>7} {bar_text(frac, 40)}")
    lines.append("```")
    return "\n".join(lines)


# -- total and identity ---------------------------------------------------------------------------
def table_total(total: float) -> Text:
    return Text(f"total: {sig(total, 8)}")


def markdown_total(total: float) -> str:
    return f"**total**: {sig(total, 8)}"


def table_identity(text: str) -> Text:
    return Text("How the rows add up: " + text)


def markdown_identity(text: str) -> str:
    return "How the rows add up: " + _md(text.replace("\n", "; "))


TABLE_RENDERERS = {
    "total": table_total, "identity": table_identity, "per_class": table_per_class, "per_output": table_per_output,
    "regularization": table_regularization, "per_sample": table_per_sample, "distribution": table_distribution,
}
MARKDOWN_RENDERERS = {
    "total": markdown_total, "identity": markdown_identity, "per_class": markdown_per_class,
    "per_output": markdown_per_output, "regularization": markdown_regularization,
    "per_sample": markdown_per_sample, "distribution": markdown_distribution,
}
