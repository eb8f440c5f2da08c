"""Rules of the gaps area (see losscheck.rules)."""

from __future__ import annotations
