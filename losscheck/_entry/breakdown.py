"""`losscheck.breakdown`: the Python API's breakdown (calling this module calls
`losscheck.api.breakdown`); the command itself is `losscheck.commands.breakdown.run_breakdown`.
The package resolves the name `losscheck.breakdown` to this module (losscheck/__init__.py)."""

from losscheck._entry import make_callable
from losscheck.commands.breakdown import MODES, run_breakdown

__all__ = ["MODES", "run_breakdown"]

make_callable(__name__, "breakdown")
