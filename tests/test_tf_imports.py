"""Where TensorFlow and Keras may be imported: only `_tf.py`, `loading/`, `probes/`, the Python API
(`api.py`) and the callback (`callbacks.py`). Every other module measures nothing and judges plain
data, so it imports neither, not even inside a function. Checked on the source (AST), so the test
needs no TensorFlow and names each offending line."""

from __future__ import annotations

import ast
import subprocess
import sys

import pytest

from tests.conftest import ROOT

PACKAGE = ROOT / "losscheck"
#: what no other module may import (a name or any submodule of it)
TF_MODULES = ("tensorflow", "keras", "tf_keras", "losscheck._tf")
#: the modules and folders that may import them
ALLOWED = ("_tf.py", "loading/", "probes/", "api.py", "callbacks.py")
#: modules that still import them, each with why (shrink this list; never grow it)
KNOWN: dict[str, str] = {}


def _imports(tree: ast.AST) -> list[tuple[int, str]]:
    """(line, module) of every import, at any depth (function bodies included)."""
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            out.append((node.lineno, node.module))
            if node.module == "losscheck":  # from losscheck import _tf
                out += [(node.lineno, f"losscheck.{a.name}") for a in node.names]
    return out


def _is_tf(module: str) -> bool:
    return any(module == m or module.startswith(m + ".") for m in TF_MODULES)


def offenders() -> dict[str, list[str]]:
    """module path (relative to losscheck/) -> 'line: module' of each TensorFlow/Keras import it should not have."""
    out: dict[str, list[str]] = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE).as_posix()
        if rel.startswith(ALLOWED) or rel in ALLOWED:
            continue
        hits = [f"{line}: {mod}" for line, mod in _imports(ast.parse(path.read_text(encoding="utf-8")))
                if _is_tf(mod)]
        if hits:
            out[rel] = hits
    return out


def test_tensorflow_is_imported_only_where_it_may_be():
    found = offenders()
    unexpected = {k: v for k, v in found.items() if k not in KNOWN}
    assert not unexpected, f"TensorFlow/Keras imported outside {ALLOWED}: {unexpected}"


def test_the_known_offenders_still_are():
    """An entry of KNOWN whose module no longer imports TensorFlow is removed from the list."""
    assert sorted(set(KNOWN) - set(offenders())) == []


def test_the_scan_sees_function_level_imports():
    tree = ast.parse("def f():\n    from losscheck._tf import keras\n    import tensorflow as tf\n"
                     "from losscheck import _tf\nimport numpy\n")
    assert sorted(m for _, m in _imports(tree) if _is_tf(m)) == ["losscheck._tf", "losscheck._tf", "tensorflow"]


@pytest.mark.parametrize("module", ["losscheck.rules", "losscheck.measurements", "losscheck.core.gate",
                                    "losscheck.core.taxonomy", "losscheck.commands.common", "losscheck.cli",
                                    "losscheck.report.assemble", "losscheck.commands.compare",
                                    "losscheck.commands.breakdown", "losscheck.commands.inspect",
                                    "losscheck.compare", "losscheck._entry.breakdown", "losscheck.inspect"])
def test_judging_modules_import_without_tensorflow(module):
    code = (f"import sys, importlib\nimportlib.import_module({module!r})\n"
            "print(sorted(m for m in ('tensorflow', 'keras', 'tf_keras') if m in sys.modules))\n")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
