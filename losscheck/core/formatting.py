"""Numbers and words as every message shows them: significant digits, counts with their noun, shapes.
Pure Python: probes, rules and renderers all write their text with these."""

from __future__ import annotations


def fmt(v: float) -> str:
    """A figure as the messages show it (6 significant digits)."""
    return f"{v:.6g}"


def sig(value: float | None, digits: int = 6, signed: bool = False) -> str:
    """`value` with `digits` significant digits (a sign always when `signed`); '' for None."""
    if value is None:
        return ""
    text = f"{value:+.{digits}g}" if signed else f"{value:.{digits}g}"
    return text


def plural(count: object, word: str, many: str | None = None) -> str:
    """'1 batch', '2 batches', '0 samples': the count and the word in agreement (`many` when the plural
    is not word + s/es)."""
    if count == 1:
        return f"{count} {word}"
    if many is None:
        many = word + ("es" if word.endswith(("s", "sh", "ch", "x")) else "s")
    return f"{count} {many}"


def shape_text(shape: tuple) -> str:
    """A shape as "(batch, 3)": None on the first axis is the batch axis."""
    dims = ["batch" if d is None and i == 0 else str(d) for i, d in enumerate(shape)]
    return "(" + ", ".join(dims) + ("," if len(dims) == 1 else "") + ")"
