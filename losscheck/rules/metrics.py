"""Rules of the metrics area (see losscheck.rules)."""

from __future__ import annotations
