"""--format github: GitHub Actions workflow commands, one annotation per finding and the verdict.

`::error title=CODE::message` for an error, `::warning` for a warning, `::notice` for info. GitHub
shows at most ANNOTATIONS_PER_KIND annotations of each kind per step and drops the rest silently, so
no kind gets more lines than that: when the findings of a kind (with the verdict, for its kind) do
not fit, the last line of that kind says how many more there are and which codes they have.
"""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING

from losscheck.core.codes import Severity
from losscheck.core.finding import Finding
from losscheck.core.formatting import plural
from losscheck.report.text import magnitude_text, verdict, where

if TYPE_CHECKING:
    from losscheck.report.model import Report

#: annotations of one kind GitHub shows per step
ANNOTATIONS_PER_KIND = 10
COMMANDS = {Severity.ERROR: "error", Severity.WARNING: "warning", Severity.INFO: "notice"}


def escape_data(text: object) -> str:
    """A workflow command's message: `%`, CR and LF escaped as GitHub reads them."""
    return str(text).replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def escape_property(text: object) -> str:
    """A workflow command's property value: the message escapes, and `:` and `,` too."""
    return escape_data(text).replace(":", "%3A").replace(",", "%2C")


def command(kind: str, message: str, **properties: str) -> str:
    """One workflow-command line: `::kind key=value,...::message`."""
    props = ",".join(f"{key}={escape_property(value)}" for key, value in properties.items())
    return f"::{kind}{' ' + props if props else ''}::{escape_data(message)}"


def _message(f: Finding) -> str:
    """The finding's message; its size and what it is about; its advice (one line each)."""
    lines = [f.message.strip()]
    size = magnitude_text(f)
    about = ", ".join(part for part in (f"magnitude {size}" if size else "", where(f)) if part)
    if about:
        lines.append(about)
    if f.advice:
        lines.append("→ " + f.advice.strip())
    return "\n".join(lines)


def _more(findings: list[Finding], severity: Severity) -> str:
    counts = Counter(f.code for f in findings)
    codes = ", ".join(f"{code} ×{n}" if n > 1 else code for code, n in counts.items())
    more = plural(len(findings), f"more {severity} finding")
    return f"{more} not annotated (GitHub shows {ANNOTATIONS_PER_KIND} per step): {codes}; " \
           "see the table or --output report.json"


def render_github(report: Report) -> str:
    code = report.exit_code()
    verdict_severity = Severity.ERROR if code else Severity.INFO
    lines = []
    for severity in (Severity.ERROR, Severity.WARNING, Severity.INFO):
        findings = [f for f in report.findings if f.severity == severity]
        room = ANNOTATIONS_PER_KIND - (severity == verdict_severity)
        shown = findings if len(findings) <= room else findings[:room - 1]
        lines += [command(COMMANDS[severity], _message(f), title=f.code) for f in shown]
        if len(shown) < len(findings):
            lines.append(command(COMMANDS[severity], _more(findings[len(shown):], severity),
                                 title=f"losscheck {report.command}"))
    model = report.header.get("model", {}).get("path")
    lines.append(command(COMMANDS[verdict_severity], (f"{model}: " if model else "") + verdict(report),
                         title=f"losscheck {report.command}"))
    return "\n".join(lines) + "\n"
