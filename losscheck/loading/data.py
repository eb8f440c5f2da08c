"""Data files: .npz (never with pickle) and .h5/.hdf5 (read batch by batch, never whole).

Key mapping (contract): one input/output: `x`, `y`; several: `x_<input name>` / `y_<output name>` or
positional `x_0, x_1, ...` / `y_0, ...`. Optional `sample_weight` of shape (n,) or matching the loss.
"""

from __future__ import annotations

import zipfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from losscheck.errors import DataFileError
from losscheck.loading.files import H5_SIGNATURE, check_readable


@dataclass
class Dataset:
    """Arrays (numpy, or lazily sliced h5py datasets) aligned with the model's inputs and outputs."""

    path: Path
    x: list[Any]
    y: list[Any]  # one per model output
    sample_weight: Any | None
    input_names: list[str]
    output_names: list[str]
    streamed: bool = False
    _handle: Any = field(default=None, repr=False)

    @property
    def n(self) -> int:
        return int(self.x[0].shape[0])

    def slice(self, start: int, stop: int) -> tuple[list[np.ndarray], list[np.ndarray], np.ndarray | None]:
        xs = [np.asarray(a[start:stop]) for a in self.x]
        ys = [np.asarray(a[start:stop]) for a in self.y]
        sw = None if self.sample_weight is None else np.asarray(self.sample_weight[start:stop])
        return xs, ys, sw

    def batch_bounds(self, batch_size: int, limit: int | None = None) -> Iterator[tuple[int, int]]:
        n = self.n if limit is None else min(self.n, limit)
        for start in range(0, n, batch_size):
            yield start, min(start + batch_size, n)

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None


def _npz_arrays(path: Path) -> tuple[dict[str, Any], Any]:
    try:
        npz = np.load(path, allow_pickle=False, mmap_mode=None)
    except (zipfile.BadZipFile, EOFError) as exc:
        raise DataFileError(path, "is not a valid .npz archive (truncated or corrupted)",
                            "re-create it with numpy.savez") from exc
    except (OSError, ValueError) as exc:
        raise DataFileError(path, f"cannot be read as .npz ({exc})", "re-create it with numpy.savez") from exc
    if not hasattr(npz, "files"):
        raise DataFileError(path, "holds a single array, not named arrays", "save it with numpy.savez(path, x=..., y=...)")
    arrays = {}
    try:
        for key in npz.files:
            arrays[key] = npz[key]
    except ValueError as exc:
        if "pickle" in str(exc).lower() or "object" in str(exc).lower():
            raise DataFileError(path, f"array {key!r} holds Python objects, which losscheck never unpickles",
                                "save numeric arrays only") from exc
        raise DataFileError(path, f"array {key!r} cannot be read ({exc})", "re-create the file") from exc
    except (zipfile.BadZipFile, EOFError, OSError) as exc:
        raise DataFileError(path, f"array {key!r} is truncated or corrupted", "re-create the file") from exc
    finally:
        npz.close()
    return arrays, None


def _h5_arrays(path: Path) -> tuple[dict[str, Any], Any]:
    import h5py

    try:
        handle = h5py.File(path, "r")
    except OSError as exc:
        raise DataFileError(path, f"cannot be read as HDF5 ({exc})", "the file is truncated or corrupted") from exc
    arrays = {k: v for k, v in handle.items() if isinstance(v, h5py.Dataset)}
    return arrays, handle


def _pick(arrays: dict[str, Any], prefix: str, names: Sequence[str], path: Path, what: str) -> list[Any]:
    if len(names) == 1:
        for key in (prefix, f"{prefix}_{names[0]}", f"{prefix}_0"):
            if key in arrays:
                return [arrays[key]]
        expected = f"'{prefix}'"
    else:
        by_name = [f"{prefix}_{n}" for n in names]
        by_pos = [f"{prefix}_{i}" for i in range(len(names))]
        if all(k in arrays for k in by_name):
            return [arrays[k] for k in by_name]
        if all(k in arrays for k in by_pos):
            return [arrays[k] for k in by_pos]
        expected = ", ".join(repr(k) for k in by_name) + " (or " + ", ".join(repr(k) for k in by_pos) + ")"
    found = ", ".join(repr(k) for k in sorted(arrays)) or "nothing"
    raise DataFileError(path, f"no {what} arrays: expected {expected}, found {found}",
                        "name the arrays as in losscheck's data-file contract")


def load_data(path: Path, input_names: Sequence[str], output_names: Sequence[str]) -> Dataset:
    """Open the data file and map its arrays to the model's inputs and outputs."""
    path = Path(path)
    check_readable(path, "data file", DataFileError)
    with open(path, "rb") as fh:
        head = fh.read(8)
    if head == H5_SIGNATURE:
        arrays, handle = _h5_arrays(path)
        streamed = True
    elif head.startswith(b"PK") or path.suffix.lower() == ".npz":
        arrays, handle = _npz_arrays(path)
        streamed = False
    elif head.startswith(b"\x93NUMPY"):
        raise DataFileError(path, "is a single .npy array, not an .npz with x and y",
                            "save it with numpy.savez(path, x=..., y=...)")
    else:
        raise DataFileError(path, "is neither an .npz nor an HDF5 file", "pass a .npz or .h5 data file")
    try:
        x = _pick(arrays, "x", input_names, path, "input")
        y = _pick(arrays, "y", output_names, path, "target")
        sw = arrays.get("sample_weight")
        ds = Dataset(path, x, y, sw, list(input_names), list(output_names), streamed, handle)
        _validate(ds, arrays)
        return ds
    except Exception:
        if handle is not None:
            handle.close()
        raise


def _validate(ds: Dataset, arrays: dict[str, Any]) -> None:
    path = ds.path
    for key, arr in arrays.items():
        dt = np.dtype(arr.dtype)
        if dt.kind not in "biuf":
            raise DataFileError(path, f"array {key!r} has dtype {dt}, not a numeric type", "store numbers only")
    named = [("x", a) for a in ds.x] + [("y", a) for a in ds.y]
    if ds.sample_weight is not None:
        named.append(("sample_weight", ds.sample_weight))
    counts = {int(a.shape[0]) if len(a.shape) else 0 for _, a in named}
    if any(len(a.shape) == 0 for _, a in named):
        raise DataFileError(path, "an array is a scalar; every array needs the sample axis first",
                            "store arrays of shape (n, ...)")
    if len(counts) != 1:
        shapes = ", ".join(f"{k}{tuple(a.shape)}" for k, a in named)
        raise DataFileError(path, f"arrays disagree on the number of samples: {shapes}",
                            "x, y and sample_weight must have the same first dimension")
    if counts == {0}:
        raise DataFileError(path, "holds no samples (empty arrays)", "pass data with at least one sample")
