"""Shared text helpers for the human formats: fixed significant digits, verdict line, figure rows."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from losscheck.core.codes import Severity
from losscheck.core.finding import Finding
from losscheck.core.formatting import plural, sig

if TYPE_CHECKING:
    from losscheck.report.model import Report


def magnitude_text(finding: Finding, digits: int = 4) -> str:
    """A finding's size with its unit: a gap signed (+0.1912), a ratio x1.003, a count '3 values', a
    floor 'floor 0.3251'; '' without a magnitude."""
    value, kind = finding.magnitude, finding.magnitude_kind
    if value is None:
        return ""
    if kind == "ratio":
        return f"x{value:.{digits}g}"
    if kind == "count":
        n = int(round(value))
        unit = finding.unit or "value"
        return plural(n, unit)
    if kind == "floor":
        return f"floor {value:.{digits}g}"
    return sig(value, digits, signed=True)


def decomposition_label(row: dict) -> str:
    """A gap row's text, indented two spaces per level."""
    return "  " * int(row.get("depth", 0)) + str(row["label"])


def percent(value: float) -> str:
    """A relative size as a percentage with 3 significant digits (0.1234 -> '12.3%')."""
    return f"{value * 100:.3g}%"


def verdict(report: Report) -> str:
    """One line: OK/FAIL with the exit code, the findings by severity, and why it passes or fails."""
    counts = {s: sum(1 for f in report.findings if f.severity == s) for s in Severity}
    code = report.exit_code()
    parts = [plural(counts[s], str(s), "info" if s == Severity.INFO else None)
             for s in (Severity.ERROR, Severity.WARNING, Severity.INFO) if counts[s]]
    reasons = [", ".join(parts) if parts else "no findings"]
    failing = len(report.failing_findings())
    if report.fail_on == "never":
        reasons.append("--fail-on never")
    elif report.findings:
        reasons.append(f"{failing or 'none'} at or above --fail-on {report.fail_on}")
    breaches = report.gap_breaches()
    for name, gap in breaches:
        reasons.append(f"{name} vs evaluate {percent(gap)} > --max-gap {percent(report.max_gap or 0.0)}")
    if report.max_gap is not None and not breaches and "evaluate" in report.figures:
        reasons.append(f"gaps within --max-gap {percent(report.max_gap)}")
    return f"{'FAIL' if code else 'OK'} (exit {code}): " + "; ".join(reasons)


def figure_rows(report: Report) -> list[tuple[str, str, str, str]]:
    """(name, value, difference, description) per figure. A figure measured on the --probe-samples
    subset is compared with evaluate on that subset (evaluate_probe_subset), and says so."""
    ev = report.figures.get("evaluate")
    subset = report.figures.get("evaluate_probe_subset")
    rows = []
    for name, fig in report.ordered_figures():
        ref = subset if subset is not None and "samples" in fig.extra and name != "evaluate_probe_subset" else ev
        if ref is None or name in ("evaluate", "regularization"):
            diff = ""
        else:
            diff = sig(fig.value - ref.value, signed=True)
        desc = fig.brief or fig.description
        if "samples" in fig.extra:
            desc += f" (first {fig.extra['samples']} samples" + (
                "; vs evaluate_probe_subset)" if ref is subset and ref is not None else ")")
        rows.append((name, sig(fig.value), diff, desc))
    return rows


def header_lines(report: Report, code: Callable[[object], str] = str,
                 text: Callable[[object], str] = str) -> list[str]:
    """What was checked: the model (and who saved it), the data, the losses; `code` marks up paths,
    `text` escapes the rest of what came from the files (see losscheck/core/text_safety.py)."""
    model = report.header.get("model", {})
    data = report.header.get("data")
    lines = [f"model {code(model.get('path'))} (saved by {text(model.get('saved_by'))})"]
    if data:
        val = data.get("validation") or {}
        if val.get("validation_split") is not None:
            samples = (f"{data['samples']} training + {val['samples']} validation of "
                       f"{plural(data['samples'] + val['samples'], 'sample')} (--validation-split "
                       f"{val['validation_split']:g})")
        else:
            samples = plural(data["samples"], "sample")
        line = f"data {code(data['path'])}: {samples}, batch {data['batch_size']}"
        if val and val.get("validation_split") is None:
            line += f"; validation {code(val.get('path'))}: {plural(val['samples'], 'sample')}"
        lines.append(line)
    losses = model.get("losses") or {}
    if losses:
        weights = model.get("loss_weights") or {}
        lines.append("loss: " + "; ".join(
            f"{text(o)}: {text(spec)}" + (f" x{weights[o]:g}" if weights.get(o, 1.0) not in (1.0, None) else "")
            for o, spec in losses.items()))
    return lines


#: the findings whose evidence is the reduction trace: the table and markdown show it when one is reported
TRACE_CODES = frozenset({"loss-rank", "batch-size-dependence", "channels-first-axis", "mask", "partial-batch",
                         "target-shape", "distribution-scaling"})
#: the line that stands for a reduction trace left out
TRACE_LEFT_OUT = "(reduction trace left out: --trace shows it; the JSON report holds it)"


def shows_section(report: Report, key: str) -> bool:
    """Whether the table and markdown show section `key`: all but the reduction trace, which only with
    --trace or a finding of TRACE_CODES."""
    return key != "reduction_trace" or report.trace or any(f.code in TRACE_CODES for f in report.findings)


def where(finding: Finding, code: Callable[[object], str] = str) -> str:
    """What a finding is about: its subject and the two figures it separates ('' when neither)."""
    parts = []
    if finding.subject:
        parts.append(f"subject {code(finding.subject)}")
    if finding.between:
        parts.append(f"between {code(finding.between[0])} and {code(finding.between[1])}")
    return ", ".join(parts)
