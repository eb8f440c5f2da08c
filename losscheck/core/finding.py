"""Finding: one explained (or unexplained) cause with its measured size, as a rule makes it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from losscheck.core.codes import CODES, Severity


@dataclass(frozen=True)
class Finding:
    """One explained (or unexplained) cause, with its measured size. Frozen: a rule makes it whole.

    `between` names the two figures whose difference (a - b) is `magnitude` exactly, or is None when
    the magnitude is not such a difference (a remainder, a count, a ratio). `unit` is what a count
    counts (singular noun, e.g. "value"); the kind comes from the code's entry in CODES."""

    code: str
    message: str
    magnitude: float | None = None
    subject: str | None = None
    between: tuple[str, str] | None = None
    advice: str = ""
    severity: Severity | None = None
    unit: str | None = None
    uncertainty: float | None = None  # spread (std) of the magnitude over random draws, when measured

    def __post_init__(self) -> None:
        if self.code not in CODES:
            raise ValueError(f"unknown finding code {self.code!r}")
        if self.severity is None:
            object.__setattr__(self, "severity", CODES[self.code].severity)

    @property
    def magnitude_kind(self) -> str | None:
        """gap / ratio / count / floor, or None when there is no magnitude."""
        return None if self.magnitude is None else CODES[self.code].magnitude_kind

    def to_json(self) -> dict[str, Any]:
        """The finding as the report's JSON object (schema: $defs.finding)."""
        out = {
            "code": self.code,
            "severity": str(self.severity),
            "message": self.message,
            "magnitude": self.magnitude,
            "magnitude_kind": self.magnitude_kind,
            "subject": self.subject,
            "between": list(self.between) if self.between else None,
            "advice": self.advice,
        }
        if self.uncertainty is not None:
            out["uncertainty"] = self.uncertainty
        return out
