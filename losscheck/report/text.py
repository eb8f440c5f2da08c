"""Shared text helpers for the human formats: fixed significant digits, verdict line, figure rows."""

from __future__ import annotations

from losscheck.findings import Report, Severity


def sig(value: float | None, digits: int = 6, signed: bool = False) -> str:
    if value is None:
        return ""
    text = f"{value:+.{digits}g}" if signed else f"{value:.{digits}g}"
    return text


def verdict(report: Report) -> str:
    counts = {s: sum(1 for f in report.findings if f.severity == s) for s in Severity}
    code = report.exit_code()
    parts = [f"{counts[s]} {s}" for s in (Severity.ERROR, Severity.WARNING, Severity.INFO) if counts[s]]
    state = "FAIL" if code else "OK"
    return f"{state} ({', '.join(parts) if parts else 'no findings'}; exit {code})"


def figure_rows(report: Report) -> list[tuple[str, str, str, str]]:
    ev = report.figures.get("evaluate")
    rows = []
    for name, fig in report.ordered_figures():
        if ev is None or name in ("evaluate", "regularization"):
            diff = ""
        else:
            diff = sig(fig.value - ev.value, signed=True)
        desc = fig.description
        if "samples" in fig.extra:
            desc += f" (first {fig.extra['samples']} samples)"
        rows.append((name, sig(fig.value), diff, desc))
    return rows
