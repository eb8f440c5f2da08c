"""Rules of the legacy area (see losscheck.rules)."""

from __future__ import annotations
