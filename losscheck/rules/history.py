"""Rules of the history area (see losscheck.rules)."""

from __future__ import annotations
