"""Report files: check every --output destination before any work, then write all of them or none.

Each file is written to a temporary file in its destination's folder, flushed and fsynced, and
renamed over the destination with os.replace, so an interrupted or failed write leaves whatever was
there before intact. No printing here: errors are UsageError with one line."""

from __future__ import annotations

import os
import stat
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path

from losscheck.core.errors import UsageError


def same_file(a: Path, b: Path) -> bool:
    """True when a and b name the same file: the same path, a link to it, or the same inode."""
    try:
        if os.path.realpath(a) == os.path.realpath(b):
            return True
        return os.path.samefile(a, b)
    except (OSError, ValueError):
        return False


def check_destinations(outputs: Iterable[Path], inputs: Iterable[tuple[str, Path]],
                       option: str = "--output") -> None:
    """Refuse an --output that is an input (or a link to one), a directory, in a missing or read-only
    folder, or given twice. `inputs` are (what, path) pairs, e.g. ("the model", Path("m.keras"));
    `option` names the destinations' option in the messages."""
    inputs = [(what, Path(p)) for what, p in inputs if p is not None]
    seen: list[Path] = []
    for path in outputs:
        path = Path(path)
        for what, source in inputs:
            if same_file(path, source):
                raise UsageError(f"{option} {path} is {what} ({source}); writing the report there would destroy "
                                 f"it: choose another {option}")
        if any(same_file(path, other) or os.path.abspath(path) == os.path.abspath(other) for other in seen):
            raise UsageError(f"{option} {path} is given twice; give each destination once")
        seen.append(path)
        folder = path.parent
        if not folder.is_dir():
            raise UsageError(f"{path}: the folder {folder} does not exist; create it or choose another {option}")
        try:
            mode = os.stat(path).st_mode
        except FileNotFoundError:
            mode = None
        except OSError as exc:
            raise UsageError(f"{path}: cannot be written ({exc.strerror or exc}); choose another {option}") from exc
        if mode is not None and stat.S_ISDIR(mode):
            raise UsageError(f"{option} {path} is a directory; give a file name, e.g. {path / 'report.json'}")
        if mode is not None and not stat.S_ISREG(mode):
            raise UsageError(f"{option} {path} is not a regular file (a device, pipe or socket); "
                             "choose a file name")
        if not os.access(folder, os.W_OK | os.X_OK):
            raise UsageError(f"{path}: the folder {folder} is not writable; choose another {option}")
        if mode is not None and not os.access(path, os.W_OK):
            raise UsageError(f"{path}: the file is not writable (permission denied); choose another {option}")


def write_all(texts: Mapping[Path, str]) -> None:
    """Write every file or none: each text goes to a temporary file beside its destination (fsynced);
    only when all are written are they renamed into place. On any failure the temporary files are
    removed and the destinations keep their previous content."""
    staged: list[tuple[str, Path]] = []
    try:
        for path, text in texts.items():
            staged.append((_stage(Path(path), text), Path(path)))
        for tmp, path in staged:
            os.replace(tmp, path)
    except BaseException:
        for tmp, _ in staged:
            try:
                os.unlink(tmp)
            except OSError:
                pass
        raise


def _stage(path: Path, text: str) -> str:
    """Write text to a new temporary file in path's folder, with path's permission bits when it exists
    (else the umask's), and return its name."""
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as exc:
        raise UsageError(f"{path}: cannot write the report ({exc.strerror or exc}); choose another --output") from exc
    try:
        try:
            mode = stat.S_IMODE(os.stat(path).st_mode)
        except OSError:
            umask = os.umask(0)
            os.umask(umask)
            mode = 0o666 & ~umask
        os.fchmod(fd, mode)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
    except BaseException as exc:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        if isinstance(exc, OSError):
            raise UsageError(f"{path}: cannot write the report ({exc.strerror or exc}); "
                             "choose another --output") from exc
        raise
    return tmp
