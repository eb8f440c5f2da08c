"""--output never destroys the user's files: an output that is an input (or a link to one) is refused
before any work, and reports are written atomically, all of them or none. The core is stubbed (see
tests/test_cli.py): these are the CLI's guarantees, independent of the report's content."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import losscheck.cli
import losscheck.cli.output
import losscheck.outputs
from losscheck.core.errors import UsageError
from losscheck.outputs import check_destinations, write_all
from tests.test_cli import cli, compare, stub  # noqa: F401 - the stub fixture

INPUT = b"PK placeholder"


def inputs(tmp_path: Path) -> dict[str, Path]:
    (tmp_path / "objs.py").write_text("def my_loss(y_true, y_pred):\n    return y_pred\n")
    (tmp_path / "cw.json").write_text('{"0": 1, "1": 3}')
    return {name: tmp_path / name for name in ("model.keras", "data.npz", "objs.py", "cw.json")}


@pytest.mark.parametrize("target, link, what", [
    ("model.keras", None, "the model"),
    ("data.npz", None, "the data file"),
    ("objs.py", None, "the --custom-objects file"),
    ("cw.json", None, "the --class-weight file"),
    ("model.keras", "symlink", "the model"),
    ("model.keras", "hardlink", "the model"),
    ("data.npz", "dotted", "the data file"),
])
def test_output_that_is_an_input_is_refused_before_any_work(stub, tmp_path, target, link, what):  # noqa: F811
    files = inputs(tmp_path)
    before = {p: p.read_bytes() for p in files.values()}
    out: Path = files[target]
    if link == "symlink":
        out = tmp_path / "report.json"
        out.symlink_to(files[target])
    elif link == "hardlink":
        out = tmp_path / "report.json"
        os.link(files[target], out)
    elif link == "dotted":
        (tmp_path / "sub").mkdir()
        out = tmp_path / "sub" / ".." / target
    result = compare("--custom-objects", "objs.py", "--class-weight", "cw.json", "--output", out)
    assert result.code == 2 and result.stdout == ""
    assert result.stderr.splitlines() == [result.stderr.strip()]
    assert f"is {what}" in result.stderr and "choose another --output" in result.stderr
    assert stub["compare"].calls == 0
    assert {p: p.read_bytes() for p in files.values()} == before


def test_output_that_is_the_loss_file_is_refused(stub, tmp_path):  # noqa: F811
    inputs(tmp_path)
    result = compare("--loss", "objs.py:my_loss", "--output", tmp_path / "objs.py")
    assert result.code == 2 and "is the --loss file" in result.stderr
    assert stub["compare"].calls == 0


def test_output_given_twice_is_refused(stub, tmp_path):  # noqa: F811
    result = compare("--output", tmp_path / "r.json", "--output", tmp_path / "." / "r.json")
    assert result.code == 2 and "given twice" in result.stderr
    assert stub["compare"].calls == 0


def test_a_failing_destination_writes_no_file(stub, tmp_path, monkeypatch):  # noqa: F811
    """Two outputs, the second cannot be rendered: neither file changes, no temporary file is left."""
    first, second = tmp_path / "a.json", tmp_path / "b.md"
    first.write_text("previous a")
    second.write_text("previous b")
    real = losscheck.cli.output._render

    def render(report, fmt, width, color):
        if fmt == "markdown":
            raise OSError(28, "No space left on device")
        return real(report, fmt, width, color)

    monkeypatch.setattr(losscheck.cli.output, "_render", render)
    result = compare("--output", first, "--output", second)
    assert result.code == 2
    assert first.read_text() == "previous a" and second.read_text() == "previous b"
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []


def test_an_interrupted_write_keeps_the_previous_file(tmp_path, monkeypatch):
    """Ctrl-C (or a full disk) while the second file is flushed: both destinations keep their content."""
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    a.write_text("old a")
    b.write_text("old b")
    calls = []
    real = os.fsync

    def fsync(fd):
        calls.append(fd)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(fd)

    monkeypatch.setattr(losscheck.outputs.os, "fsync", fsync)
    with pytest.raises(KeyboardInterrupt):
        write_all({a: "new a", b: "new b"})
    assert (a.read_text(), b.read_text()) == ("old a", "old b")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.json", "b.json"]

    calls.clear()
    monkeypatch.setattr(losscheck.outputs.os, "fsync", lambda fd: (_ for _ in ()).throw(OSError(28, "No space")))
    with pytest.raises(UsageError, match="a.json: cannot write the report"):
        write_all({a: "new a", b: "new b"})
    assert (a.read_text(), b.read_text()) == ("old a", "old b")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.json", "b.json"]


def test_write_all_replaces_and_keeps_the_permission_bits(tmp_path):
    a = tmp_path / "a.json"
    a.write_text("old")
    a.chmod(0o640)
    write_all({a: "new", tmp_path / "b.md": "fresh"})
    assert a.read_text() == "new" and (a.stat().st_mode & 0o777) == 0o640
    assert (tmp_path / "b.md").read_text() == "fresh"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.json", "b.md"]


def test_destinations_checked_before_writing(tmp_path):
    (tmp_path / "dir.json").mkdir()
    with pytest.raises(UsageError, match="is a directory"):
        check_destinations([tmp_path / "ok.json", tmp_path / "dir.json"], [])
    with pytest.raises(UsageError, match="does not exist"):
        check_destinations([tmp_path / "ok.json", tmp_path / "missing" / "r.json"], [])
    os.mkfifo(tmp_path / "pipe.json")
    with pytest.raises(UsageError, match="not a regular file"):
        check_destinations([tmp_path / "pipe.json"], [])
    if os.geteuid() != 0:
        locked = tmp_path / "locked"
        locked.mkdir()
        locked.chmod(0o500)
        with pytest.raises(UsageError, match="not writable"):
            check_destinations([locked / "r.json"], [])


def test_several_outputs_all_written_with_one_stderr_line(stub, tmp_path):  # noqa: F811
    a, b = tmp_path / "a.json", tmp_path / "b.md"
    a.write_text("old")
    result = compare("--output", a, "--output", b)
    assert result.code == 1 and result.stderr.startswith(f"losscheck: wrote {a}, {b}: FAIL")
    assert a.read_text().startswith("{") and b.read_text().startswith("### ")
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_output_that_is_the_data_function_file_is_refused(stub, tmp_path):  # noqa: F811
    (tmp_path / "make.py").write_text("def make_data():\n    return None\n")
    result = cli("compare", "model.keras", f"{tmp_path / 'make.py'}:make_data", "--output", tmp_path / "make.py")
    assert result.code == 2 and "is the data file" in result.stderr
    assert stub["compare"].calls == 0


@pytest.mark.parametrize("option, name, what", [
    ("--val", "val.npz", "the --val file"),
    ("--history", "history.json", "the --history file"),
])
def test_output_that_is_the_validation_or_history_file_is_refused(stub, tmp_path, option, name, what):  # noqa: F811
    source = tmp_path / name
    source.write_bytes(INPUT)
    result = compare(option, source, "--output", source)
    assert result.code == 2 and result.stdout == ""
    assert f"is {what}" in result.stderr and "choose another --output" in result.stderr
    assert stub["compare"].calls == 0
    assert source.read_bytes() == INPUT


def test_plot_that_is_an_output_is_refused(stub, tmp_path):  # noqa: F811
    pytest.importorskip("matplotlib")
    target = tmp_path / "report.svg"
    result = compare("--plot", target, "--output", target)
    assert result.code == 2 and result.stdout == ""
    assert "--plot" in result.stderr and "is an --output file" in result.stderr
    assert stub["compare"].calls == 0
    assert not target.exists()
