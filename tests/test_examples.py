"""The example notebook and the docs' Python example run: the notebook's code cells in order, in a
fresh interpreter, each cell's last expression displayed as Jupyter would (its _repr_mimebundle_ or
_repr_html_ when it has one); then the block of docs/python-api.md."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest

from tests.conftest import ROOT

NOTEBOOK = ROOT / "examples" / "losscheck_in_a_notebook.ipynb"

RUNNER = r'''
import ast, json, sys
cells = json.loads(sys.stdin.read())
scope = {"__name__": "__main__"}
shown = 0
for source in cells:
    tree = ast.parse(source)
    last = tree.body.pop() if tree.body and isinstance(tree.body[-1], ast.Expr) else None
    exec(compile(tree, "<cell>", "exec"), scope)
    if last is not None:
        value = eval(compile(ast.Expression(last.value), "<cell>", "eval"), scope)
        bundle = getattr(value, "_repr_mimebundle_", None)  # Jupyter asks for it before _repr_html_
        html = getattr(value, "_repr_html_", None)
        if bundle is not None or html is not None:
            text = bundle()["text/html"] if bundle is not None else html()
            assert "<table" in text and "</div>" in text
            if bundle is not None:
                assert bundle()["text/plain"] == str(value) and bundle()["text/markdown"].startswith("### ")
            shown += 1
        else:
            repr(value)
print("cells", len(cells), "html", shown)
'''


def _code_cells() -> list[str]:
    nb = json.loads(NOTEBOOK.read_text(encoding="utf-8"))
    assert nb["nbformat"] == 4
    return ["".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "code"]


def _docs_example() -> str:
    """The Python example of the docs' API page (docs/python-api.md)."""
    page = (ROOT / "docs" / "python-api.md").read_text(encoding="utf-8")
    section = page.split("# In Python and notebooks\n", 1)[1]
    blocks = re.findall(r"```python\n(.*?)```", section, flags=re.S)
    assert len(blocks) == 1
    return blocks[0]


def test_notebook_and_docs_example_compile():
    """Without TensorFlow: the notebook is nbformat 4 JSON and every code cell (and the docs block) is
    valid Python that uses the API's names."""
    cells = _code_cells() + [_docs_example()]
    for source in cells:
        compile(source, "<cell>", "exec")
    text = "\n".join(cells)
    for name in ("losscheck.compare(", "losscheck.breakdown(", "losscheck.callbacks.LossCheck(", ".exit_code",
                 '.figures["fit_logged"].value'):
        assert name in text


@pytest.mark.slow
@pytest.mark.keras
def test_notebook_and_docs_example_run():
    cells = _code_cells() + [_docs_example()]
    out = subprocess.run([sys.executable, "-c", RUNNER], input=json.dumps(cells), cwd=ROOT, capture_output=True,
                         text=True, timeout=600, env={**__import__("os").environ, "PYTHONPATH": str(ROOT)})
    assert out.returncode == 0, out.stderr[-3000:]
    assert f"cells {len(cells)} html 2" in out.stdout
    assert "losscheck epoch 2: Fit logged" in out.stdout
