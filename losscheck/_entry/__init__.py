"""`losscheck.compare`, `losscheck.breakdown` and `losscheck.inspect` are the command modules and
also the Python API's functions: each module's class is made callable, forwarding to losscheck.api.
`losscheck.compare` and `losscheck.inspect` are top-level modules; `losscheck.breakdown` is
`losscheck._entry.breakdown`, which the package resolves the name to (an attribute, not a submodule)."""

from __future__ import annotations

import sys
import types
from typing import Any


def make_callable(module_name: str, function: str) -> None:
    """Calling the module `module_name` calls `losscheck.api.<function>`."""

    class Entry(types.ModuleType):
        def __call__(self, *args: Any, **kwargs: Any) -> Any:
            from losscheck import api

            return getattr(api, function)(*args, **kwargs)

    Entry.__name__ = Entry.__qualname__ = f"{function}_module"
    sys.modules[module_name].__class__ = Entry
