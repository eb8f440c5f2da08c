"""The user's Python files of custom objects (--custom-objects FILE.py, --loss FILE.py:NAME), imported
without writing bytecode beside them."""

from __future__ import annotations

import hashlib
import importlib.util
import sys
import types
from pathlib import Path
from typing import Any

from losscheck import usercode
from losscheck.core.errors import UsageError
from losscheck.loading.files import check_python_file


def import_custom_objects(path: Path | None, option: str = "--custom-objects") -> dict[str, Any]:
    """Import FILE.py; use its `custom_objects` dict if it has one, else its public functions and classes.
    Never writes bytecode (__pycache__) beside the user's file."""
    if path is None:
        return {}
    path = Path(path)
    check_python_file(path, option)
    usercode.register_file(path)
    name = f"losscheck_custom_{hashlib.sha1(str(path.resolve()).encode()).hexdigest()[:12]}"
    if name in sys.modules:  # already imported in this process (the fit copy, or tests): reuse it
        module = sys.modules[name]
    else:
        spec = importlib.util.spec_from_file_location(name, path)
        if spec is None or spec.loader is None:
            raise UsageError(f"{path}: cannot be imported as Python; pass a .py file")
        module = importlib.util.module_from_spec(spec)
        sys.dont_write_bytecode = True  # never write __pycache__ beside the user's file (or its imports)
        folder = str(path.resolve().parent)
        if folder not in sys.path:
            sys.path.append(folder)  # its sibling modules can be imported; never shadows installed ones
        sys.modules[name] = module
        try:
            spec.loader.exec_module(module)
        except BaseException as exc:  # the user's code (SyntaxError, SystemExit, ...): theirs to see, in one line
            sys.modules.pop(name, None)
            if isinstance(exc, KeyboardInterrupt):
                raise
            if isinstance(exc, (SystemExit, usercode.UserCodeExit)):
                raise usercode.exited(exc) from exc
            text = (str(exc).strip().splitlines() or [""])[0][:200]
            raise UsageError(f"{path}: importing the {option} file failed: {type(exc).__name__}: {text}") from exc
    explicit = getattr(module, "custom_objects", None)
    if explicit is not None:
        if not isinstance(explicit, dict) or not all(isinstance(k, str) for k in explicit):
            raise UsageError(f"{path}: `custom_objects` must be a dict of name -> function or class")
        return dict(explicit)
    # every public function or class the file defines or imports (a loss built by a factory in another
    # module counts too); names it imports from Keras map to the same Keras objects, which is harmless
    return {key: value for key, value in vars(module).items()
            if not key.startswith("_") and callable(value) and not isinstance(value, types.ModuleType)}
