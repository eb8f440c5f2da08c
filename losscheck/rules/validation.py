"""Rules of the validation area (see losscheck.rules)."""

from __future__ import annotations
