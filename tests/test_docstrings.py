"""Every public name of the judging core (core, the report model and formats, reference, rules) has a
docstring."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1] / "losscheck"
CHECKED = [*sorted((ROOT / "core").glob("*.py")), ROOT / "report" / "model.py", ROOT / "report" / "formats.py",
           *sorted((ROOT / "reference").glob("*.py")), *sorted((ROOT / "rules").glob("*.py"))]


def _missing(path: Path) -> list[str]:
    tree = ast.parse(path.read_text())
    out = [] if ast.get_docstring(tree) else ["(module)"]

    def visit(body: list[ast.stmt], prefix: str) -> None:
        for node in body:
            if isinstance(node, (ast.FunctionDef, ast.ClassDef)) and not node.name.startswith("_"):
                if not ast.get_docstring(node):
                    out.append(f"{prefix}{node.name} (line {node.lineno})")
                if isinstance(node, ast.ClassDef):
                    visit(node.body, f"{node.name}.")

    visit(tree.body, "")
    return out


def test_the_checked_modules_exist():
    assert len(CHECKED) > 10 and all(p.is_file() for p in CHECKED)


def test_every_public_name_has_a_docstring():
    missing = {str(p.relative_to(ROOT)): m for p in CHECKED if (m := _missing(p))}
    assert not missing, missing


def test_the_check_sees_a_missing_docstring(tmp_path):
    f = tmp_path / "m.py"
    f.write_text('"""Module."""\n\ndef public():\n    pass\n\n\nclass C:\n    """C."""\n\n    def method(self):\n'
                 '        pass\n\n    def _private(self):\n        pass\n')
    assert _missing(f) == ["public (line 3)", "C.method (line 10)"]
