"""Table (rich) and markdown renderers for the sections of `losscheck breakdown`: total, identity,
per_class, per_output, regularization, per_sample, distribution. Registered in report/sections.py."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from rich.console import Group
from rich.text import Text

from losscheck.core.formatting import plural, sig
from losscheck.core.text_safety import prose_for_markdown as _md
from losscheck.report.layout import Col, FitTable

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


# -- per class ------------------------------------------------------------------------------------
def _count(x: Any) -> str:
    return "" if x is None else str(x)


#: per-class row key -> (table header, formatter, legend entry); every key a row has gets a column
CLASS_FIELDS: dict[str, tuple[str, Any, str]] = {
    "output": ("output", str, ""),
    "class": ("class", str, ""),
    "kind": ("kind", str, ""),
    "loss": ("loss", lambda x: _num(x, 4), "the class's mean loss"),
    "share": ("share", _pct, "its part of the total (the bar)"),
    "count": ("count", _count, "elements (channel) or samples (true class) counted"),
    "contribution": ("contrib.", lambda x: _num(x, 4), "weight x loss"),
    "weight": ("weight", lambda x: _num(x, 4), "the class's weight in its output's loss"),
    "prevalence": ("prev.", _pct, "positives / count"),
    "positives": ("pos.", _count, "positive elements"),
    "loss_positives": ("loss+", lambda x: _num(x, 4), "mean loss of the positive elements"),
    "loss_negatives": ("loss-", lambda x: _num(x, 4), "mean loss of the negative elements"),
    "share_from_positives": ("share+", _pct, "part of the class's loss from its positives"),
    "recall": ("recall", _pct, ""),
    "precision": ("prec.", _pct, "precision"),
    "iou": ("IoU", _pct, ""),
    "accuracy": ("acc.", _pct, "accuracy"),
    "predicted": ("predicted", _count, "samples predicted as the class"),
}
#: keys that are the same on every row go to the title instead of a column
TITLE_KEYS = ("output", "kind")
KIND_TEXT = {"channel": "channels", "true_class": "true classes", "output": "not split"}


def _class_columns(rows: list[dict[str, Any]]) -> list[tuple[str, str, Any]]:
    """(key, header, formatter) for every key any row has, in the JSON's order."""
    keys: list[str] = []
    for r in rows:
        keys += [k for k in r if k not in keys]
    cols = []
    for k in keys:
        if k in TITLE_KEYS and len({r.get(k) for r in rows}) == 1:
            continue
        header, fmt, _ = CLASS_FIELDS.get(k, (k, lambda x: "" if x is None else (sig(x, 4) if isinstance(x, float)
                                                                                 else str(x)), ""))
        cols.append((k, header, fmt))
    return cols


def _class_cell(r: dict[str, Any], key: str, fmt: Any) -> str:
    """A row's value; n/a where the JSON has null (e.g. precision of a class never predicted)."""
    if key not in r:
        return ""
    return "n/a" if r[key] is None else fmt(r[key])


def _class_title(rows: list[dict[str, Any]]) -> str:
    about = []
    for k in TITLE_KEYS:
        values = {r.get(k) for r in rows}
        if len(values) == 1 and None not in values:
            value = next(iter(values))
            about.append(f"output {value}" if k == "output" else KIND_TEXT.get(str(value), str(value)))
    return "Loss per class" + (f" ({', '.join(about)})" if about else "")


def _class_legend(cols: list[tuple[str, str, Any]]) -> str:
    parts = [f"{header}: {CLASS_FIELDS[k][2]}" for k, header, _ in cols if k in CLASS_FIELDS and CLASS_FIELDS[k][2]]
    return "; ".join(parts)


#: more rows than this: the table shows the classes with the highest loss first, and says so
MAX_TABLE_ROWS = 60


def _shown(rows: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], str]:
    if len(rows) <= MAX_TABLE_ROWS:
        return rows, ""
    worst = sorted(rows, key=lambda r: -(r.get("loss") or 0.0))[:MAX_TABLE_ROWS]
    return worst, (f"{len(rows)} classes: the {MAX_TABLE_ROWS} with the highest loss are shown, highest first "
                   "(--format json has every row)")


def table_per_class(rows: list[dict[str, Any]]) -> Any:
    all_rows = rows
    rows, caption = _shown(rows)
    cols = _class_columns(all_rows)
    key = sum(1 for k, _, _ in cols if k in ("output", "class"))
    spec = []
    for k, header, _ in cols:
        spec.append(Col(header, "left" if k in ("output", "class", "kind") else "right", wrap=False))
        if k == "share":
            spec.append(Col("share of loss", wrap=False))
    table_rows = []
    for r in rows:
        cells: list[Any] = []
        for k, _, fmt in cols:
            cells.append(_class_cell(r, k, fmt))
            if k == "share":
                cells.append(_bar(r.get("share"), 14))
        table_rows.append(cells)
    legend = _class_legend(cols)
    return Group(FitTable(_class_title(all_rows), spec, table_rows, key=key, caption=caption or None),
                 *([Text(legend, style="dim"), Text("")] if legend else []))


def markdown_per_class(rows: list[dict[str, Any]]) -> str:
    all_rows = rows
    rows, caption = _shown(rows)
    cols = _class_columns(all_rows)
    heads = [h for _, h, _ in cols]
    lines = [f"**{_class_title(all_rows)}**" + (f" ({caption})" if caption else ""), "",
             "| " + " | ".join(heads) + " | share of loss |",
             "|" + "|".join("---" if k in ("output", "class", "kind") else "---:" for k, _, _ in cols) + "|---|"]
    for r in rows:
        lines.append("| " + " | ".join(_md(_class_cell(r, k, fmt)) for k, _, fmt in cols)
                     + f" | {_md_bar(r.get('share'))} |")
    legend = _class_legend(cols)
    if legend:
        lines += ["", legend]
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


def table_per_output(rows: list[dict[str, Any]]) -> Any:
    cols = _output_columns(rows)
    spec = [Col(name, "left" if name == "output" else "right", wrap=name == "output") for name, _ in cols]
    spec.append(Col("share of total", wrap=False))
    return FitTable("Loss per output", spec, [[fn(r) for _, fn in cols] + [_bar(r.get("share"))] for r in rows])


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
    spec = [Col("layer"), Col("kind"), Col("penalty", "right", wrap=False), Col("share", "right", wrap=False),
            Col("share of total", wrap=False)]
    rows = [(str(r.get("layer") or "-"), r["kind"], sig(r["penalty"]), _pct(r.get("share")), _bar(r.get("share")))
            for r in reg.get("layers", [])]
    return FitTable(f"Regularization: {sig(reg['total'])} ({_pct(reg.get('share'))} of the total)", spec, rows)


def markdown_regularization(reg: dict[str, Any]) -> str:
    lines = [f"**Regularization**: {sig(reg['total'])} ({_pct(reg.get('share'))} of the total)"]
    if reg.get("layers"):
        lines += ["", "| layer | kind | penalty | share |", "|---|---|---:|---:|"]
        for r in reg["layers"]:
            lines.append(f"| {_md(r.get('layer') or '-')} | {_md(r['kind'])} | {sig(r['penalty'])} | "
                         f"{_pct(r.get('share'))} |")
    return "\n".join(lines)


# -- per sample -----------------------------------------------------------------------------------
def table_per_sample(rows: list[dict[str, Any]]) -> Any:
    spec = [Col("rank", "right", wrap=False), Col("index", "right", wrap=False), Col("loss", "right", wrap=False),
            Col("target", comfort=20), Col("prediction", comfort=20)]
    table_rows = [(str(i), str(r["index"]), _num(r["loss"], 5), str(r.get("target", "")), str(r.get("prediction", "")))
                  for i, r in enumerate(rows, 1)]
    return FitTable(f"The {plural(len(rows), 'worst sample', 'worst samples')}", spec, table_rows, key=2, heavy=True)


def markdown_per_sample(rows: list[dict[str, Any]]) -> str:
    lines = [f"**The {plural(len(rows), 'worst sample', 'worst samples')}**", "",
             "| rank | index | loss | target | prediction |",
             "|---:|---:|---:|---|---|"]
    for i, r in enumerate(rows, 1):
        tgt = _md(r.get("target", ""))
        pred = _md(r.get("prediction", ""))
        lines.append(f"| {i} | {r['index']} | {_num(r['loss'], 5)} | {tgt} | {pred} |")
    return "\n".join(lines)


def _quantile_line(dist: dict[str, Any]) -> str:
    q = dist.get("quantiles", {})
    parts = [f"min {sig(dist['min'], 4)}"] + [f"{k} {sig(v, 4)}" for k, v in q.items()] + [f"max {sig(dist['max'], 4)}"]
    return (f"{plural(dist['count'], 'sample')}, mean {sig(dist['mean'], 5)}, std {sig(dist['std'], 4)}\n"
            + ", ".join(parts))


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
    rows = [(label, str(count), Text(bar_text(frac, 40), style="cyan")) for label, count, frac in _hist_rows(dist)]
    t = FitTable("Distribution of per-sample losses" + (" (log-spaced bins)" if scale == "log" else " (linear bins)"),
                 [Col("loss bin", wrap=False), Col("samples", "right", wrap=False), Col("", wrap=False)], rows)
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


TABLE_RENDERERS: dict[str, Callable[[Any], Any]] = {
    "total": table_total, "identity": table_identity, "per_class": table_per_class, "per_output": table_per_output,
    "regularization": table_regularization, "per_sample": table_per_sample, "distribution": table_distribution,
}
MARKDOWN_RENDERERS: dict[str, Callable[[Any], str]] = {
    "total": markdown_total, "identity": markdown_identity, "per_class": markdown_per_class,
    "per_output": markdown_per_output, "regularization": markdown_regularization,
    "per_sample": markdown_per_sample, "distribution": markdown_distribution,
}
