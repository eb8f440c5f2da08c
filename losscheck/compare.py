"""`losscheck.compare`: the Python API's compare (calling this module calls `losscheck.api.compare`);
the command itself is `losscheck.commands.compare.run_compare`."""

from losscheck._entry import make_callable
from losscheck.commands.compare import run_compare

__all__ = ["run_compare"]

make_callable(__name__, "compare")
