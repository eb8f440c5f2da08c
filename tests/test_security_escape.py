"""Text from model files is escaped where it is shown: no HTML, image or link of a file reaches the
markdown report (a pull-request comment), no terminal control sequence reaches stdout or stderr,
and JSON keeps the exact string (json.dumps escapes it once). The hostile strings ride in a real
model built here: its layer and output names (as far as Keras accepts them), the keras_version of
its metadata.json and the loss name of its config.json (patched by rewriting the archive)."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np
import pytest

from losscheck.core.text_safety import code_span, for_markdown, for_terminal, prose_for_markdown
from tests.conftest import run_cli

IMG = "<img src=x onerror=alert(1)>"
LINK = "[link](http://evil)"
ESCAPES = "\x1b]0;pwned\x07\x1b[31m"
HOSTILE = f"{IMG} {LINK} {ESCAPES}"
NAME_TAIL = "<img src=x onerror=alert(1)>[link](javascript:alert(1))\x1b]0;pwned\x07\x1b[31m"
CONTROL = ("\x1b", "\x07", "\x9b", "\u202e")


def assert_no_control(text: str) -> None:
    for ch in CONTROL:
        assert ch not in text, repr(ch)


def assert_inert_markdown(md: str) -> None:
    assert_no_control(md)
    assert "<img" not in md
    assert "](http" not in md and "](javascript" not in md
    assert "http://evil" not in md  # not even a bare URL that GitHub would autolink


# -- the functions --------------------------------------------------------------------------------
def test_for_terminal_makes_controls_visible():
    assert for_terminal(ESCAPES) == "\\x1b]0;pwned\\x07\\x1b[31m"
    assert for_terminal("a\u202eb\x9bc\rd\x00") == "a\\u202eb\\x9bc\\x0dd\\x00"
    assert for_terminal("two\nlines") == "two lines"
    assert for_terminal("two\nlines", keep_newlines=True) == "two\nlines"
    assert for_terminal("dense_1 (Dense) ünïcode ✓") == "dense_1 (Dense) ünïcode ✓"


def test_for_markdown_escapes_html_links_and_emphasis():
    assert for_markdown(IMG) == "&lt;img src=x onerror=alert(1)&gt;"
    out = for_markdown(f"{LINK} ![i](u) *b* _e_ dense_1 a|b `c` ~s~ & {ESCAPES}")
    assert_inert_markdown(out)
    assert "\\[link\\]" in out and "\\!\\[i\\]" in out and "\\*b\\*" in out and "\\_e\\_" in out
    assert "dense_1" in out and "a\\|b" in out and "\\`c\\`" in out and "&amp;" in out
    assert for_markdown("# heading") == "\\# heading"
    assert for_markdown("plain words, 3.5% (ok)") == "plain words, 3.5% (ok)"


def test_code_span_survives_backticks_and_falls_back_for_html():
    assert code_span("a``b") == "```a``b```"
    assert code_span("`x") == "`` `x ``"
    assert code_span("a|b", table=True) == "`a\\|b`"
    assert code_span(IMG) == for_markdown(IMG)
    assert prose_for_markdown("Use `from_logits=True` on <b>") == "Use `from_logits=True` on &lt;b&gt;"


# -- a real model carrying the strings -------------------------------------------------------------
def _rewrite(src: Path, dst: Path, edit) -> Path:
    with zipfile.ZipFile(src) as zf:
        members = {n: zf.read(n) for n in zf.namelist()}
    edit(members)
    with zipfile.ZipFile(dst, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return dst


def _version(members: dict[str, bytes]) -> None:
    meta = json.loads(members["metadata.json"])
    meta["keras_version"] = f"{meta['keras_version']} {HOSTILE}"
    members["metadata.json"] = json.dumps(meta).encode()


@pytest.fixture(scope="module")
def hostile_models(tmp_path_factory):
    """named.keras: Dropout and output layers named with HTML, a link and escapes, plus a hostile
    keras_version (Keras cannot run such names inside tf.function, so only `inspect` reads it);
    plain.keras: ordinary names, hostile keras_version; badloss.keras: a hostile loss name."""
    import keras

    tmp = tmp_path_factory.mktemp("hostile")
    keras.utils.set_random_seed(0)
    made = {}
    for kind, tail in (("named", NAME_TAIL), ("plain", "")):
        inp = keras.Input((4,), name="inp")
        hidden = keras.layers.Dropout(0.1, name="drop" + tail)(inp)
        out = keras.layers.Dense(1, name="out" + tail)(hidden)
        model = keras.Model(inp, out)
        model.compile(loss="mse", optimizer="adam")
        model.save(tmp / f"{kind}_saved.keras")
        made[kind] = _rewrite(tmp / f"{kind}_saved.keras", tmp / f"{kind}.keras", _version)

    def bad_loss(members):
        config = json.loads(members["config.json"])
        config["compile_config"]["loss"] = HOSTILE
        members["config.json"] = json.dumps(config).encode()

    made["badloss"] = _rewrite(tmp / "plain_saved.keras", tmp / "badloss.keras", bad_loss)
    rng = np.random.default_rng(0)
    made["data"] = tmp / "data.npz"
    np.savez(made["data"], x=rng.normal(size=(24, 4)).astype("float32"), y=rng.normal(size=(24, 1)).astype("float32"))
    return made


@pytest.mark.keras
def test_inspect_escapes_names_and_version(hostile_models, tmp_path):
    model = hostile_models["named"]
    md = run_cli("inspect", model, "--format", "markdown")
    assert md.code == 0, md.stderr
    assert_inert_markdown(md.stdout + md.stderr)
    assert "&lt;img src=x onerror=alert(1)&gt;" in md.stdout  # shown, escaped, not dropped
    table = run_cli("inspect", model, "--format", "table")
    assert table.code == 0, table.stderr
    assert_no_control(table.stdout + table.stderr)
    assert "\\x1b]0;pwned\\x07" in table.stdout
    js = run_cli("inspect", model, "--format", "json")
    assert_no_control(js.stdout + js.stderr)
    header = js.json["model"]
    assert header["saved_by"].endswith(HOSTILE)  # exact: escaped once, by json.dumps
    assert "out" + NAME_TAIL in header["outputs"]
    html = tmp_path / "report.html"
    svg = tmp_path / "report.svg"
    res = run_cli("inspect", model, "--output", html, "--output", svg, "--output", tmp_path / "report.md")
    assert res.code == 0, res.stderr
    assert_no_control(res.stdout + res.stderr)
    for page in (html.read_text(), svg.read_text()):
        assert "<img" not in page and "\x1b" not in page
    assert_inert_markdown((tmp_path / "report.md").read_text())


@pytest.mark.keras
@pytest.mark.parametrize("command", [["compare"], ["breakdown", "--per-output"]])
def test_reports_on_data_escape_the_version(hostile_models, command):
    model, data = hostile_models["plain"], hostile_models["data"]
    md = run_cli(*command, model, data, "--format", "markdown")
    assert md.code in (0, 1), md.stderr
    assert_inert_markdown(md.stdout + md.stderr)
    table = run_cli(*command, model, data)
    assert_no_control(table.stdout + table.stderr)
    js = run_cli(*command, model, data, "--format", "json")
    assert js.json["model"]["saved_by"].endswith(HOSTILE)


@pytest.mark.keras
def test_error_lines_quoting_file_text_are_escaped(hostile_models):
    res = run_cli("compare", hostile_models["badloss"], hostile_models["data"])
    assert res.code == 2
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("losscheck: error: "), res.stderr
    assert_no_control(res.stdout + res.stderr)
