"""`losscheck.inspect`: the Python API's inspect (calling this module calls `losscheck.api.inspect`);
the command itself is `losscheck.commands.inspect.run_inspect`."""

from losscheck._entry import make_callable
from losscheck.commands.inspect import run_inspect

__all__ = ["run_inspect"]

make_callable(__name__, "inspect")
