"""The command line's data that is not a file of arrays: DATA as FILE.py:FUNC (what FUNC returns:
arrays, a dict of arrays, a tf.data.Dataset, a PyDataset, a Python generator), or a folder of TFRecord
files with --parse. In-memory arrays: loading/arrays.py; pipelines: loading/pipelines.py; generators:
loading/generators.py."""

from __future__ import annotations

import contextlib
import hashlib
import re
import sys
from pathlib import Path
from typing import Any

from losscheck.core.errors import LosscheckError, UsageError, first_line

_SPEC = re.compile(r"^(?P<file>.+\.py):(?P<name>[A-Za-z_][A-Za-z0-9_]*)$")


def is_function_spec(text: str) -> bool:
    return _SPEC.match(text) is not None


def import_function(spec: str, what: str) -> Any:
    """FILE.py:NAME -> the object NAME of that file, imported as --custom-objects files are (no
    bytecode written beside it; its folder importable)."""
    import importlib.util

    m = _SPEC.match(spec)
    if m is None:
        raise UsageError(f"{what} {spec!r}: expected FILE.py:FUNCTION")
    path, name = Path(m.group("file")), m.group("name")
    if not path.is_file():
        raise UsageError(f"{path}: {what} file not found; give FILE.py:FUNCTION with an existing .py file")
    module_name = f"losscheck_data_{hashlib.sha1(str(path.resolve()).encode()).hexdigest()[:12]}"
    module = sys.modules.get(module_name)
    if module is None:
        loader_spec = importlib.util.spec_from_file_location(module_name, path)
        if loader_spec is None or loader_spec.loader is None:
            raise UsageError(f"{path}: cannot be imported as Python; pass a .py file")
        module = importlib.util.module_from_spec(loader_spec)
        sys.dont_write_bytecode = True
        folder = str(path.resolve().parent)
        if folder not in sys.path:
            sys.path.append(folder)
        sys.modules[module_name] = module
        try:
            with contextlib.redirect_stdout(sys.stderr):  # stdout is the report's
                loader_spec.loader.exec_module(module)
        except BaseException as exc:
            sys.modules.pop(module_name, None)
            if isinstance(exc, KeyboardInterrupt):
                raise
            raise UsageError(f"{path}: importing the {what} file failed: {type(exc).__name__}: "
                             f"{first_line(exc)}") from exc
    obj = getattr(module, name, None)
    if not callable(obj):
        defined = sorted(k for k, v in vars(module).items() if callable(v) and not k.startswith("_"))
        raise UsageError(f"{path}: {what} names {name!r}, which the file does not define as a function; "
                         f"defined: {', '.join(defined) or 'nothing public'}")
    return obj


def function_data(spec: str) -> Any:
    """DATA FILE.py:FUNC: what FUNC() returns (arrays tuple, dict of arrays, tf.data.Dataset, PyDataset,
    a Python generator)."""
    fn = import_function(spec, "DATA")
    try:
        # what the function prints (e.g. image_dataset_from_directory's "Found N files") goes to stderr:
        # stdout is the report's
        with contextlib.redirect_stdout(sys.stderr):
            return fn()
    except LosscheckError:
        raise
    except BaseException as exc:
        if isinstance(exc, KeyboardInterrupt):
            raise
        raise UsageError(f"{spec}: calling the data function failed: {type(exc).__name__}: {first_line(exc)}") from exc


TFRECORD_SUFFIXES = (".tfrecord", ".tfrecords", ".tfrec", ".tfrecord.gz", ".tfrecords.gz", ".tfrec.gz")


def tfrecord_files(folder: Path) -> list[Path]:
    """The TFRecord files of a folder, in name order (files named *.tfrecord*/*.tfrec*, else every file)."""
    if not folder.is_dir():
        raise UsageError(f"{folder}: --parse reads a folder of TFRecord files, and this is not a folder")
    files = sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))
    named = [p for p in files if p.name.lower().endswith(TFRECORD_SUFFIXES)]
    files = named or files
    if not files:
        raise UsageError(f"{folder}: the folder holds no TFRecord files")
    return files


def tfrecord_data(folder: Path, parse: str, batch_size: int) -> Any:
    """A folder of TFRecord files, each serialized example mapped by the --parse function to (x, y[,
    sample_weight]), batched by --batch-size, in file order, never shuffled."""
    from losscheck._tf import tf

    fn = import_function(parse, "--parse")
    files = tfrecord_files(Path(folder))
    compressed = {p.name.lower().endswith(".gz") for p in files}
    if len(compressed) > 1:
        raise UsageError(f"{folder}: mixes GZIP-compressed (.gz) and plain TFRecord files; use one kind")
    ds = tf.data.TFRecordDataset([str(p) for p in files], compression_type="GZIP" if True in compressed else "")
    try:
        with contextlib.redirect_stdout(sys.stderr):  # the function is traced now; stdout is the report's
            ds = ds.map(fn)
    except Exception as exc:
        raise UsageError(f"--parse {parse}: the function cannot map a serialized example ({type(exc).__name__}: "
                         f"{first_line(exc)}); it receives one scalar string tensor and returns (x, y) or "
                         "(x, y, sample_weight)") from exc
    return ds.batch(batch_size)
