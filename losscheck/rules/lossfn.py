"""Rules of the lossfn area (see losscheck.rules)."""

from __future__ import annotations
