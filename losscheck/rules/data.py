"""Rules of the data area (see losscheck.rules)."""

from __future__ import annotations
