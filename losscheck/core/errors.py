"""Errors that end a run with exit code 2. Each carries one line that names the file, what is
wrong and what to do; the CLI (losscheck/cli/) prints it (a traceback only with --debug)."""

from __future__ import annotations


def first_line(exc: BaseException, limit: int = 200) -> str:
    """The first line of an exception's message (its class name when empty), at most `limit` characters."""
    text = str(exc).strip()
    return (text.splitlines()[0] if text else type(exc).__name__)[:limit]


class LosscheckError(Exception):
    """Base of every error that maps to exit code 2."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class UsageError(LosscheckError):
    """Bad options or option values."""


class ModelFileError(LosscheckError):
    """The model file cannot be opened, loaded or compiled."""

    def __init__(self, path: object, problem: str, hint: str = "") -> None:
        msg = f"{path}: {problem}" + (f"; {hint}" if hint else "")
        super().__init__(msg)


class DataFileError(LosscheckError):
    """The data file cannot be read or does not fit the model."""

    def __init__(self, path: object, problem: str, hint: str = "") -> None:
        msg = f"{path}: {problem}" + (f"; {hint}" if hint else "")
        super().__init__(msg)


class UserCodeError(LosscheckError):
    """The user's own code (--custom-objects, a --loss FILE.py function) raised or exited."""
