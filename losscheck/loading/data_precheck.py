"""Data files checked before TensorFlow loads: what losscheck.loading.data.load_data would refuse,
with the same words, found from the archive and .npy / HDF5 headers alone (no array data read)."""

from __future__ import annotations

import contextlib
import zipfile
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from losscheck.core.errors import DataFileError
from losscheck.loading.archive import ArchiveProblem, ObjectArray, _npy_header, check_archive, npy_members_size
from losscheck.loading.data import (
    REMAKE_NPZ,
    _check_npz,
    _data_format,
    _h5_arrays,
    _npz_arrays,
    dataset_from_arrays,
    readable_keys,
)


@dataclass(frozen=True)
class _Declared:
    """An .npz array as its .npy header declares it: shape and dtype, no data read."""

    shape: tuple[int, ...]
    dtype: np.dtype


def _npz_declared(path: Path, keys: set[str]) -> tuple[dict[str, _Declared], list[str]] | None:
    """(the arrays named in `keys` as their headers declare them; the file's other array names, as
    np.load names them); None when a header cannot be read (load_data then names the problem)."""
    declared: dict[str, _Declared] = {}
    others: list[str] = []
    with zipfile.ZipFile(path) as zf:
        for info in zf.infolist():
            key = info.filename[:-4] if info.filename.endswith(".npy") else info.filename
            if key not in keys:
                others.append(key)
                continue
            if key in declared or not info.filename.endswith(".npy"):
                return None
            try:
                shape, dtype, _ = _npy_header(zf, info)
            except Exception:  # noqa: BLE001 - not an .npy header: np.load names what is wrong
                return None
            declared[key] = _Declared(shape, dtype)
    return declared, others


def precheck_data_file(path: Path, names: tuple[Sequence[str], Sequence[str]] | None = None) -> None:
    """Before TensorFlow loads: what load_data would refuse, with the same words, found from the file's
    headers alone. Without the model: a file that is no data file (a single .npy, a pickle, a model), an
    .npz whose archive headers are not honest (a decompression bomb, an array declaring more data than
    its member holds), an HDF5 file reaching outside itself or with chunks too large to unpack. With
    `names`, the model's (input names, output names): also the array keys, object or non-numeric
    arrays, sample counts and the sample_weight shape. Shapes against the model's inputs and label
    kinds need the loaded model. An .npz that is no valid zip archive is named when it is loaded."""
    path = Path(path)
    keys = readable_keys(*names) if names is not None else set()
    if _data_format(path) == "h5":
        arrays, others, handle = _h5_arrays(path, keys)
        try:
            if names is not None:
                dataset_from_arrays(arrays, names[0], names[1], path, streamed=True, handle=handle, others=others)
        finally:
            handle.close()
        return
    if not zipfile.is_zipfile(path):
        return
    try:
        with zipfile.ZipFile(path) as zf:
            check_archive(zf, path.stat().st_size)
            for name in zf.namelist():
                if name.endswith(".npy"):
                    with contextlib.suppress(ObjectArray):  # refused below if the model reads it
                        npy_members_size(zf, {name[:-4]})
    except ArchiveProblem as exc:
        raise DataFileError(path, f"the .npz archive is refused: {exc}", REMAKE_NPZ) from exc
    except (zipfile.BadZipFile, EOFError, zlib.error, OSError):
        return  # load_data names what is wrong with the file
    _npz_arrays(path, set())  # opens the archive as np.load does, reading no array
    if names is None:
        return
    _check_npz(path, REMAKE_NPZ, keys)
    found = _npz_declared(path, keys)
    if found is not None:
        dataset_from_arrays(dict(found[0]), names[0], names[1], path, others=found[1])
