"""Rules of the semantics area (see losscheck.rules)."""

from __future__ import annotations
