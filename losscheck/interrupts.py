"""SIGINT and SIGTERM end a run the same way: the handler raises KeyboardInterrupt, so every
`finally` (private temp dirs) and every atexit hook (Keras home, TensorFlow's autograph files) runs.
Keras swallows exceptions in places (a bare `except:` around reading the weights), so the signal is
also remembered and `check()` raises it again at the next safe point."""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator

_received: list[int] = []


class Interrupted(KeyboardInterrupt):
    """A SIGINT or SIGTERM arrived; `signum` says which."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def _handler(signum: int, frame: object) -> None:
    _received.append(signum)
    raise Interrupted(signum)


def received() -> int | None:
    """The first signal that arrived during the run, if any."""
    return _received[0] if _received else None


def check() -> None:
    """Raise again a signal that arrived but whose exception something swallowed."""
    if _received:
        raise Interrupted(_received[0])


@contextlib.contextmanager
def handled() -> Iterator[None]:
    """Install the handlers for the block (main thread only; elsewhere the defaults stay)."""
    _received.clear()
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    for s in previous:
        signal.signal(s, _handler)
    try:
        yield
    finally:
        for s, h in previous.items():
            signal.signal(s, h)
