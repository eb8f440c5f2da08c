"""Reading --history: a Keras `History.history` JSON, a `CSVLogger` CSV or a TensorBoard log folder,
as the losses the user logged per epoch.

The file is untrusted: bounded size, JSON/CSV parsed with the standard library, TensorBoard events
read with TensorFlow's own `summary_iterator`; never unpickled. Epochs are numbered from 1 (as
Keras's progress bar and ModelCheckpoint's `{epoch}` do); CSVLogger and TensorBoard count from 0.
Values are rounded to float32, the precision Keras logs in, so the three formats of one run agree.
TensorFlow is imported only for a TensorBoard folder.
"""

from __future__ import annotations

import csv
import io
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from losscheck.core.errors import UsageError

MAX_FILE_BYTES = 16 * 2**20  # a JSON or CSV history
MAX_EVENT_BYTES = 256 * 2**20  # all event files of a TensorBoard folder together
MAX_EPOCHS = 100_000


@dataclass
class History:
    """Logged per-epoch figures. `val_loss` is None when the run had no validation data."""

    path: Path
    format: str  # json | csv | tensorboard
    epochs: list[int]
    loss: list[float | None]
    val_loss: list[float | None] | None
    extra: dict[str, Any] = field(default_factory=dict)


def _bad(path: Path, problem: str) -> UsageError:
    return UsageError(f"--history {path}: {problem}; pass a History.history JSON (dict of lists), a CSVLogger "
                      "CSV or a TensorBoard log folder")


def _f32(value: Any) -> float | None:
    """A logged number as Keras holds it (float32); None for missing, NaN or Inf."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, str):
        value = value.strip()
        if not value:
            return None
    v = float(np.float32(float(value)))
    return v if math.isfinite(v) else None


def _series(path: Path, name: str, values: Any) -> list[float | None]:
    if not isinstance(values, list):
        raise _bad(path, f"{name!r} is not a list of numbers")
    if len(values) > MAX_EPOCHS:
        raise _bad(path, f"{name!r} has {len(values)} entries (more than {MAX_EPOCHS})")
    out = []
    for i, v in enumerate(values):
        try:
            out.append(_f32(v))
        except (TypeError, ValueError, OverflowError):
            raise _bad(path, f"{name!r}[{i}] is not a number ({str(v)[:40]!r})") from None
    return out


def _read_text(path: Path) -> str:
    try:
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            raise _bad(path, f"is {size} bytes (more than {MAX_FILE_BYTES})")
        with path.open("rb") as fh:
            raw = fh.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        raise _bad(path, f"cannot be read ({exc.strerror or exc})") from exc
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise _bad(path, "is not UTF-8 text") from None


def _from_json(path: Path, text: str) -> History:
    try:
        raw = json.loads(text, parse_constant=lambda c: float(c))
    except (ValueError, RecursionError) as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise _bad(path, f"is not valid JSON ({first[:80]})") from None
    return _from_mapping(path, raw, "json")


def _from_mapping(path: Path, raw: Any, fmt: str) -> History:
    if isinstance(raw, dict) and isinstance(raw.get("history"), dict):
        raw = raw["history"]  # {"history": {...}, "params": ...}
    if not isinstance(raw, dict) or "loss" not in raw:
        raise _bad(path, "has no 'loss' list (expected a JSON object like {\"loss\": [...], \"val_loss\": [...]})")
    loss = _series(path, "loss", raw["loss"])
    val = _series(path, "val_loss", raw["val_loss"]) if "val_loss" in raw else None
    if val is not None and len(val) != len(loss):
        raise _bad(path, f"'loss' has {len(loss)} epochs but 'val_loss' has {len(val)}")
    return History(path, fmt, list(range(1, len(loss) + 1)), loss, val)


def _from_csv(path: Path, text: str) -> History:
    lines = text[:4096].splitlines()
    first = lines[0] if lines else ""
    delimiter = next((d for d in (",", ";", "\t") if d in first), ",")  # CSVLogger's `separator`
    try:
        rows = list(csv.DictReader(io.StringIO(text), delimiter=delimiter))
    except csv.Error as exc:
        raise _bad(path, f"is not a valid CSV ({exc})") from None
    if not rows or "loss" not in (rows[0].keys() or ()):
        raise _bad(path, "has no 'loss' column (expected CSVLogger's header epoch,loss,val_loss,...)")
    if len(rows) > MAX_EPOCHS:
        raise _bad(path, f"has {len(rows)} rows (more than {MAX_EPOCHS})")
    epochs: list[int] = []
    loss: list[float | None] = []
    val: list[float | None] = []
    has_val = "val_loss" in rows[0]
    for i, row in enumerate(rows, start=1):
        try:
            epochs.append(int(row["epoch"]) + 1 if row.get("epoch") not in (None, "") else i)
            loss.append(_f32(row.get("loss")))
            if has_val:
                val.append(_f32(row.get("val_loss")))
        except (TypeError, ValueError, OverflowError):
            raise _bad(path, f"row {i} holds a value that is not a number") from None
    return History(path, "csv", epochs, loss, val if has_val else None)


def _event_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and "tfevents" in p.name)


def _scalar(value: Any) -> float | None:
    """A summary value as a float: `simple_value`, or a scalar tensor (TF2 summaries)."""
    if value.HasField("tensor"):
        from losscheck._tf import tf

        arr = tf.make_ndarray(value.tensor)
        if arr.size != 1:
            return None
        return _f32(arr.reshape(-1)[0].item())
    if value.HasField("simple_value"):
        return _f32(value.simple_value)
    return None


def _read_events(path: Path, files: list[Path], tags: tuple[str, ...]) -> dict[int, float | None]:
    """step -> value of the first of `tags` found (later writes of a step win, as TensorBoard shows)."""
    from losscheck._tf import tf

    out: dict[int, float | None] = {}
    for f in files:
        try:
            for event in tf.compat.v1.train.summary_iterator(str(f)):
                for value in event.summary.value:
                    if value.tag in tags:
                        if len(out) >= MAX_EPOCHS and event.step not in out:
                            raise _bad(path, f"{f.name} logs more than {MAX_EPOCHS} epochs")
                        out[int(event.step)] = _scalar(value)
        except UsageError:
            raise
        except Exception as exc:  # noqa: BLE001 - DataLossError on a truncated or damaged file, and the like
            raise _bad(path, f"the event file {f.name} cannot be read ({type(exc).__name__})") from None
    return out


def _from_tensorboard(path: Path) -> History:
    train_dir, val_dir = path / "train", path / "validation"
    train_files = _event_files(train_dir) if train_dir.is_dir() else _event_files(path)
    val_files = _event_files(val_dir) if val_dir.is_dir() else []
    total = sum(f.stat().st_size for f in train_files + val_files)
    if total > MAX_EVENT_BYTES:
        raise _bad(path, f"holds {total} bytes of event files (more than {MAX_EVENT_BYTES})")
    if not train_files:
        raise _bad(path, "holds no TensorBoard event files (looked in it and in its train/ folder)")
    loss = _read_events(path, train_files, ("epoch_loss", "loss"))
    if not loss:
        raise _bad(path, "has no 'epoch_loss' scalar (Keras's TensorBoard callback writes it under train/)")
    val = _read_events(path, val_files, ("epoch_loss", "loss")) if val_files else {}
    if not val:  # a folder written without train/validation subfolders
        val = _read_events(path, train_files, ("epoch_val_loss", "val_loss"))
    steps = sorted(loss)
    return History(path, "tensorboard", [s + 1 for s in steps], [loss[s] for s in steps],
                   [val.get(s) for s in steps] if val else None)


#: how an in-memory history is named in messages and the report
MEMORY_LABEL = "<History in memory>"


def history_in_memory(value: Any) -> History:
    """A `keras.callbacks.History` (what fit returns) or its `.history` dict, as a History."""
    raw = getattr(value, "history", value)
    if not isinstance(raw, dict):
        raise UsageError(f"history must be a keras History (what fit returns), its .history dict, or the path of a "
                         f"History JSON, CSVLogger CSV or TensorBoard log folder, not a {type(value).__name__}")
    return _from_mapping(Path(MEMORY_LABEL), {k: list(v) if isinstance(v, tuple) else v for k, v in raw.items()},
                         "memory")


def read_history(path: Path) -> History:
    """Parse a history file or folder (format by what it is: folder, .csv, else JSON)."""
    path = Path(path)
    if path.is_dir():
        hist = _from_tensorboard(path)
    elif not path.exists():
        raise _bad(path, "does not exist")
    else:
        text = _read_text(path)
        stripped = text.lstrip()
        if path.suffix.lower() in (".csv", ".tsv") or (stripped and stripped[0] not in "{["):
            hist = _from_csv(path, text)
        else:
            hist = _from_json(path, text)
    if not hist.loss:
        raise _bad(path, "holds no epochs")
    return hist
