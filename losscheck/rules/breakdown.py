"""Rules of the breakdown area (see losscheck.rules)."""

from __future__ import annotations
