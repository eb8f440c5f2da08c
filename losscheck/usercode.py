"""Where the user's own Python runs (the --custom-objects file, a --loss FILE.py function): which
files and loss functions are theirs, turning their exceptions into one-line UserCodeErrors, and
keeping their sys.exit / os._exit from ending the run without a report."""

from __future__ import annotations

import contextlib
import os
import re
import traceback
from collections.abc import Iterator
from pathlib import Path

from losscheck.core.errors import UserCodeError

_FILES: set[str] = set()  # real paths of the user's Python files imported in this run
_LOSSES: dict[str, list[str]] = {}  # user loss function/class name -> the outputs it is the loss of
_FRAME = re.compile(r'File "([^"]+)", line (\d+), in (\S+)')


class UserCodeExit(BaseException):
    """Raised in place of os._exit(code) while losscheck runs the user's code."""

    def __init__(self, code: object) -> None:
        super().__init__(code)
        self.code = code


def reset() -> None:
    _FILES.clear()
    _LOSSES.clear()


def register_file(path: Path) -> None:
    _FILES.add(os.path.realpath(path))


def register_loss(name: str, output: str) -> None:
    outputs = _LOSSES.setdefault(name, [])
    if output not in outputs:
        outputs.append(output)


def loss_names() -> str:
    """The user's losses in use, e.g. "loss 'focal' (output 'Y')", or '' when every loss is Keras's."""
    if not _LOSSES:
        return ""
    shown = [f"{name!r} (output{'s' if len(outs) > 1 else ''} {', '.join(repr(o) for o in outs)})"
             for name, outs in _LOSSES.items()]
    return ("loss " if len(shown) == 1 else "losses ") + ", ".join(shown)


@contextlib.contextmanager
def no_hard_exit() -> Iterator[None]:
    """While the block runs, os._exit raises UserCodeExit instead of ending the process unannounced."""
    real = os._exit

    def _exit(code: int = 0) -> None:
        raise UserCodeExit(code)

    os._exit = _exit  # type: ignore[assignment]
    try:
        yield
    finally:
        os._exit = real


def _user_frames(exc: BaseException) -> list[tuple[str, int, str]]:
    """(file, line, function) of the user's frames, outermost first, from the traceback and from the
    'in user code' / 'defined at' stack TensorFlow writes into the message of errors it re-raises."""
    if not _FILES:
        return []
    frames: list[tuple[str, int, str]] = []
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        for fs in traceback.extract_tb(current.__traceback__):
            if os.path.realpath(fs.filename) in _FILES:
                frames.append((fs.filename, fs.lineno or 0, fs.name))
        for file, line, name in _FRAME.findall(str(current)):
            if os.path.realpath(file) in _FILES:
                frames.append((file, int(line), name))
        current = current.__cause__ or current.__context__
    return frames


def _reason(exc: BaseException) -> str:
    """The last informative line of an error (TensorFlow puts the real one last, after the stack)."""
    text = str(exc).split("Arguments received by", 1)[0]  # Keras appends the call's arguments
    lines = [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.strip().startswith("•")]
    lines = [ln for ln in lines if not ln.startswith(("File ", "Detected at node", "Graph execution error"))
             and ln not in ("in user code:",)]
    text = lines[-1] if lines else type(exc).__name__
    text = re.sub(r"^\w+(Error|Exception): ", "", text)
    text = re.split(r" for '\{\{node | \[\[\{\{node |\s*\[Op:", text)[0].strip()
    return f"{type(exc).__name__}: {text[:240].rstrip('.')}"


def _where(frames: list[tuple[str, int, str]]) -> tuple[str, str]:
    """The loss the failure happened in (if one of the user's losses is on the stack) and the place."""
    file, line, name = frames[-1]
    place = f"{Path(file).name}, line {line}, in {name}"
    for _, _, fn in frames:
        if fn in _LOSSES:
            outputs = _LOSSES[fn]
            which = (f"output {outputs[0]!r}" if len(outputs) == 1
                     else "outputs " + ", ".join(repr(o) for o in outputs))
            return f"your loss {fn!r} failed on {which}", place
    return "your custom code failed", place


def explain(exc: BaseException) -> UserCodeError | None:
    """A UserCodeError when the user's code raised `exc` (their frames are on its stack), else None."""
    frames = _user_frames(exc)
    if not frames:
        return None
    what, place = _where(frames)
    return UserCodeError(f"{what}: {_reason(exc)} ({place}); fix your code there (--debug shows the traceback)")


def exited(exc: BaseException) -> UserCodeError:
    """The one line for a sys.exit / os._exit from the user's code."""
    code = getattr(exc, "code", None)
    call = "os._exit" if isinstance(exc, UserCodeExit) else "sys.exit"
    frames = _user_frames(exc)
    place = f" ({Path(frames[-1][0]).name}, line {frames[-1][1]}, in {frames[-1][2]})" if frames else ""
    return UserCodeError(f"your code called {call}({code!r}){place} while losscheck ran it, so no report was made; "
                         "remove the exit call from your --custom-objects / --loss file")
