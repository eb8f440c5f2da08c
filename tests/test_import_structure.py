"""The package's import structure: stages import only earlier stages, and no modules import each other
in a circle. Stages in order:
    core (measurements/, and every top-level module or folder not named below)
    < loading < probes (measure) < rules (judge) < report
    < entry (commands/, cli, api, callbacks, preflight, the callable-module shims compare/inspect,
      _entry, __main__)
Every import counts, function-local ones included; only `if TYPE_CHECKING:` blocks are left out (they
never run). Also: no module over MAX_LINES lines. Checked on the source (AST), so no TensorFlow."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT

PACKAGE = ROOT / "losscheck"
#: stage of the first name below the package; any other name is core (0)
STAGE = {"measurements": 0, "loading": 1, "probes": 2, "rules": 3, "report": 4,
         "commands": 5, "cli": 5, "api": 5, "callbacks": 5, "__main__": 5, "_entry": 5, "compare": 5,
         "inspect": 5, "preflight": 5}
STAGE_NAMES = ("core", "loading", "probes", "rules", "report", "entry")
MAX_LINES = 400


def modules(root: Path = PACKAGE) -> dict[str, Path]:
    """Dotted module name -> file, a package named by its __init__.py."""
    out = {}
    for path in sorted(root.rglob("*.py")):
        name = ".".join((root.name, *path.relative_to(root).with_suffix("").parts))
        out[name.removesuffix(".__init__")] = path
    return out


def imports(source: str, name: str, is_package: bool, known: set[str]) -> list[tuple[str, int]]:
    """(module of the package, line) of each import in `source` (module `name`), at any depth, resolved
    to the longest known module; `if TYPE_CHECKING:` blocks are skipped, self-imports dropped."""
    tree = ast.parse(source)
    skip: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skip.update(id(n) for b in node.body for n in ast.walk(b))
    base = name if is_package else name.rsplit(".", 1)[0]
    out = []
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            mod = node.module or ""
            if node.level:
                parts = base.split(".")
                mod = ".".join(parts[: len(parts) - node.level + 1] + ([mod] if mod else []))
            targets = [f"{mod}.{a.name}" if f"{mod}.{a.name}" in known else mod for a in node.names]
        for t in targets:
            while t and t not in known:
                t = t.rsplit(".", 1)[0] if "." in t else ""
            if t and t != name:
                out.append((t, node.lineno))
    return out


def stage(module: str) -> int:
    parts = module.split(".")
    return STAGE.get(parts[1], 0) if len(parts) > 1 else 0


def graph() -> dict[str, list[tuple[str, int]]]:
    mods = modules()
    known = set(mods)
    return {name: imports(path.read_text(encoding="utf-8"), name, path.name == "__init__.py", known)
            for name, path in mods.items()}


def cycles(adj: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected groups of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []
    counter = [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(adj.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(max(limit, 10000))
    try:
        for v in sorted(adj):
            if v not in index:
                visit(v)
    finally:
        sys.setrecursionlimit(limit)
    return out


def test_no_import_cycles():
    adj = {name: {t for t, _ in found} for name, found in graph().items()}
    assert cycles(adj) == []


def test_no_import_from_a_later_stage():
    mods = modules()
    up = sorted({f"{mods[name].relative_to(ROOT).as_posix()}:{line} ({STAGE_NAMES[stage(name)]}) -> {t} "
                f"({STAGE_NAMES[stage(t)]})"
                 for name, found in graph().items() for t, line in found if stage(t) > stage(name)})
    assert up == []


def test_no_module_over_the_line_limit():
    long = {path.relative_to(ROOT).as_posix(): n for path in PACKAGE.rglob("*.py")
            if (n := len(path.read_text(encoding="utf-8").splitlines())) > MAX_LINES}
    assert long == {}


MAX_FUNCTION_LINES = 80


def test_no_function_over_the_line_limit():
    long = {}
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                lines = node.end_lineno - node.lineno + 1
                if lines > MAX_FUNCTION_LINES:
                    long[f"{path.relative_to(ROOT).as_posix()}::{node.name}"] = lines
    assert long == {}


def test_the_scan_sees_function_local_imports_and_skips_type_checking():
    known = {"losscheck", "losscheck.rules", "losscheck.rules.gaps", "losscheck.report", "losscheck.report.text",
             "losscheck.probes", "losscheck.probes.gaps"}
    source = ("from typing import TYPE_CHECKING\n"
              "from losscheck.report import text\n"
              "from . import gaps\n"
              "if TYPE_CHECKING:\n    from losscheck.probes import gaps as g\n"
              "def f():\n    import losscheck.probes.gaps\n    from ..report.text import sig\n")
    assert sorted(imports(source, "losscheck.rules.lossfn", False, known)) == [
        ("losscheck.probes.gaps", 7), ("losscheck.report.text", 2), ("losscheck.report.text", 8),
        ("losscheck.rules.gaps", 3)]
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


@pytest.mark.parametrize("module, expected", [("losscheck", "core"), ("losscheck.findings", "core"),
                                              ("losscheck.measurements.gaps", "core"),
                                              ("losscheck.loading.data", "loading"), ("losscheck.probes", "probes"),
                                              ("losscheck.rules.gaps", "rules"), ("losscheck.report.json", "report"),
                                              ("losscheck.commands.compare", "entry"), ("losscheck.compare", "entry"),
                                              ("losscheck._entry.breakdown", "entry")])
def test_stages(module, expected):
    assert STAGE_NAMES[stage(module)] == expected
