"""Data files: .npz (never with pickle) and .h5/.hdf5 (read batch by batch, never whole).

Key mapping (contract): one input/output: `x`, `y`; several: `x_<input name>` / `y_<output name>` or
positional `x_0, x_1, ...` / `y_0, ...`. Optional `sample_weight` of shape (n,) or matching the loss.
Other arrays in a file (`x_test` beside `x`, ...) are never read; the Dataset's `notes` name them.
"""

from __future__ import annotations

import zipfile
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from losscheck.core.errors import DataFileError, first_line
from losscheck.loading.archive import (
    ArchiveProblem,
    ObjectArray,
    available_memory,
    check_archive,
    npy_members_size,
)
from losscheck.loading.files import H5_SIGNATURE, check_readable, is_hdf5, read_head
from losscheck.loading.h5_guard import outside_reference, size_text
from losscheck.loading.model_checks import check_against_model


@dataclass
class Dataset:
    """Arrays (numpy, or lazily sliced h5py datasets) aligned with the model's inputs and outputs; a
    DataSource (loading/source.py)."""

    pipeline: ClassVar[bool] = False  # a file or arrays: losscheck batches it
    generator: ClassVar[bool] = False

    path: Path
    x: list[Any]
    y: list[Any]  # one per model output
    sample_weight: Any | None
    input_names: list[str]
    output_names: list[str]
    streamed: bool = False
    _handle: Any = field(default=None, repr=False)
    keys: tuple[list[str], list[str]] = field(default_factory=lambda: ([], []))  # the file's x and y array names
    notes: list[str] = field(default_factory=list)  # what reading the data left out, for the report's notes

    @property
    def n(self) -> int:
        return int(self.x[0].shape[0])

    def slice(self, start: int, stop: int) -> tuple[list[np.ndarray], list[np.ndarray], np.ndarray | None]:
        """Rows start:stop of every array (from an h5 file: read now, only those rows)."""
        try:
            xs = [np.asarray(a[start:stop]) for a in self.x]
            ys = [np.asarray(a[start:stop]) for a in self.y]
            sw = None if self.sample_weight is None else np.asarray(self.sample_weight[start:stop])
        except Exception as exc:  # a damaged h5 dataset (OSError), or a closed file
            raise DataFileError(self.path, f"rows {start}:{stop} cannot be read ({type(exc).__name__}: "
                                f"{str(exc).strip()[:150]})", "the file is damaged; re-create it") from exc
        return xs, ys, sw

    def batch_bounds(self, batch_size: int, limit: int | None = None) -> Iterator[tuple[int, int]]:
        n = self.n if limit is None else min(self.n, limit)
        for start in range(0, n, batch_size):
            yield start, min(start + batch_size, n)

    def batches(self, batch_size: int, limit: int | None = None
                ) -> Iterator[tuple[int, int, list[np.ndarray], list[np.ndarray], np.ndarray | None]]:
        """(start, stop, xs, ys, sample_weight) for each batch of `batch_size` rows (up to `limit`)."""
        for start, stop in self.batch_bounds(batch_size, limit):
            yield (start, stop, *self.slice(start, stop))

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None


#: an .npz is read whole: its arrays together may take at most this share of the available memory
NPZ_MEMORY_SHARE = 0.5


def _check_npz(path: Path, remake: str, keys: set[str]) -> None:
    """Before np.load reads a byte of data: the archive's headers are honest (archive.check_archive),
    and of the arrays `keys` (those that will be read) none declares more bytes than its member holds
    and all fit in available memory."""
    try:
        with zipfile.ZipFile(path) as zf:
            check_archive(zf, path.stat().st_size)
            total = npy_members_size(zf, keys)
    except (zipfile.BadZipFile, EOFError, zlib.error, OSError):
        raise
    except ObjectArray as exc:
        raise DataFileError(path, f"array {exc.key!r} holds Python objects (dtype=object), which losscheck never "
                            "unpickles", "save numeric arrays only") from exc
    except ArchiveProblem as exc:
        raise DataFileError(path, f"the .npz archive is refused: {exc}", remake) from exc
    avail = available_memory()
    if total > NPZ_MEMORY_SHARE * avail:
        raise DataFileError(path, f"its arrays need {size_text(total)} in memory, more than half of the "
                            f"{size_text(avail)} available (an .npz is read whole)",
                            "store the data as .h5, which losscheck reads batch by batch")


REMAKE_NPZ = "re-create it with numpy.savez(path, x=..., y=...)"


def _npz_arrays(path: Path, keys: set[str]) -> tuple[dict[str, Any], list[str]]:
    """(the arrays named in `keys` that the file holds, read whole; the names of the others, never read)."""
    remake = REMAKE_NPZ
    try:
        if zipfile.is_zipfile(path):
            _check_npz(path, remake, keys)
        elif read_head(path, "data file", DataFileError, 6) == b"\x93NUMPY":
            raise DataFileError(path, "holds a single array, not named arrays", remake)
        npz = np.load(path, allow_pickle=False, mmap_mode=None)
    except DataFileError:
        raise
    except (zipfile.BadZipFile, EOFError, zlib.error) as exc:
        raise DataFileError(path, "is not a valid .npz archive (truncated or corrupted)", remake) from exc
    except ValueError as exc:
        if "pickle" in str(exc).lower():
            raise DataFileError(path, "holds a pickled Python object, which losscheck never unpickles", remake) from exc
        raise DataFileError(path, f"cannot be read as .npz ({first_line(exc)})", remake) from exc
    except Exception as exc:  # OSError and whatever numpy raises on a damaged archive
        raise DataFileError(path, f"cannot be read as .npz ({type(exc).__name__}: {first_line(exc)})", remake) from exc
    if not hasattr(npz, "files"):
        raise DataFileError(path, "holds a single array, not named arrays", remake)
    if "config.json" in npz.files and ("metadata.json" in npz.files or "model.weights.h5" in npz.files):
        npz.close()
        raise DataFileError(path, "is a Keras model file (.keras), not a data file",
                            "pass the model first, then the data")
    arrays = {}
    key = "?"
    others = [k for k in npz.files if k not in keys]
    try:
        for key in npz.files:
            if key in keys:
                arrays[key] = npz[key]
    except ValueError as exc:
        if "pickle" in str(exc).lower() or "object" in str(exc).lower():
            raise DataFileError(path, f"array {key!r} holds Python objects (dtype=object), which losscheck never "
                                "unpickles", "save numeric arrays only") from exc
        raise DataFileError(path, f"array {key!r} cannot be read, the file is damaged ({first_line(exc)})",
                            remake) from exc
    except Exception as exc:  # BadZipFile (CRC), EOFError, zlib.error, OSError on a damaged member
        raise DataFileError(path, f"array {key!r} is truncated or corrupted ({type(exc).__name__})", remake) from exc
    finally:
        npz.close()
    return arrays, others


def _h5_arrays(path: Path, keys: set[str]) -> tuple[dict[str, Any], list[str], Any]:
    """(the datasets named in `keys`, read lazily; the names of the file's other root members; the open file)."""
    import h5py

    try:
        handle = h5py.File(path, "r")
    except Exception as exc:
        text = str(exc)
        problem = "is truncated" if "truncated" in text else f"cannot be read as HDF5 ({first_line(exc)})"
        raise DataFileError(path, problem, "the file is damaged; re-create it") from exc
    try:
        outside = outside_reference(handle)
    except Exception as exc:
        handle.close()
        raise DataFileError(path, f"its HDF5 structure cannot be read ({first_line(exc)})",
                            "the file is damaged; re-create it") from exc
    if outside is not None:
        handle.close()
        raise DataFileError(path, outside,
                            "re-create it with the arrays stored in the file itself (h5py: f['x'] = array)")
    try:
        arrays = {k: v for k, v in handle.items() if isinstance(v, h5py.Dataset)}
        others = [k for k in handle if k not in keys]
    except Exception as exc:
        handle.close()
        raise DataFileError(path, f"its HDF5 structure cannot be read ({first_line(exc)})",
                            "the file is damaged; re-create it") from exc
    if "model_config" in handle.attrs and ("model_weights" in handle or not arrays):
        handle.close()
        raise DataFileError(path, "is a Keras model file, not a data file", "pass the model first, then the data")
    for key in handle:
        if key in arrays or key not in keys:
            continue
        problem = _h5_not_a_dataset(handle, key)
        handle.close()
        raise DataFileError(path, problem, f"store {key!r} as a dataset (h5py: f[{key!r}] = array)")
    return {k: v for k, v in arrays.items() if k in keys}, others, handle


def _h5_not_a_dataset(handle: Any, key: str) -> str:
    """Why the root member `key` is not a dataset losscheck can read: a group, ... (links are refused
    before this, by loading.h5_guard)."""
    import h5py

    try:
        obj = handle.get(key)
    except Exception as exc:  # noqa: BLE001
        return f"{key!r} cannot be opened ({type(exc).__name__}: {first_line(exc)})"
    if isinstance(obj, h5py.Group):
        return f"{key!r} is an HDF5 group, not a dataset"
    if obj is None:
        return f"{key!r} is a link that leads nowhere"
    return f"{key!r} is not a dataset ({type(obj).__name__})"


def readable_keys(input_names: Sequence[str], output_names: Sequence[str]) -> set[str]:
    """Every array name a data file for this model may use: `x`, `y`, `sample_weight`, `x_<input>`,
    `x_<i>`, `y_<output>`, `y_<i>`."""
    keys = {"x", "y", "sample_weight"}
    for prefix, names in (("x", input_names), ("y", output_names)):
        keys |= {f"{prefix}_{n}" for n in names} | {f"{prefix}_{i}" for i in range(len(names))}
    return keys


#: at most this many ignored array names are quoted in the note, each cut to NAME_LIMIT characters
NAMES_SHOWN, NAME_LIMIT = 8, 60


def ignored_note(path: Path, ignored: Sequence[str], used: Sequence[str]) -> str:
    """The note naming the arrays of a data file that were not read (names quoted with repr, so a
    control character in one is shown as an escape; long lists and names cut)."""
    names = sorted(map(str, ignored))
    shown = [repr(k if len(k) <= NAME_LIMIT else k[:NAME_LIMIT] + "...") for k in names[:NAMES_SHOWN]]
    more = f" and {len(names) - NAMES_SHOWN} more" if len(names) > NAMES_SHOWN else ""
    return (f"{path.name}: read {', '.join(repr(k) for k in used)}; left out {len(names)} other "
            f"entr{'ies' if len(names) > 1 else 'y'} the model does not use: {', '.join(shown)}{more}")


def _pick(arrays: dict[str, Any], prefix: str, names: Sequence[str], path: Path,
          what: str, found_keys: Sequence[str] | None = None) -> tuple[list[Any], list[str]]:
    if len(names) == 1:
        for key in (prefix, f"{prefix}_{names[0]}", f"{prefix}_0"):
            if key in arrays:
                return [arrays[key]], [key]
        expected = f"'{prefix}'"
    else:
        by_name = [f"{prefix}_{n}" for n in names]
        by_pos = [f"{prefix}_{i}" for i in range(len(names))]
        if all(k in arrays for k in by_name):
            return [arrays[k] for k in by_name], by_name
        if all(k in arrays for k in by_pos):
            return [arrays[k] for k in by_pos], by_pos
        expected = ", ".join(repr(k) for k in by_name) + " (or " + ", ".join(repr(k) for k in by_pos) + ")"
    found = ", ".join(repr(k) for k in sorted(arrays if found_keys is None else found_keys)) or "nothing"
    raise DataFileError(path, f"no {what} arrays: expected {expected}, found {found}",
                        "name the arrays as in losscheck's data-file contract")


def dataset_from_arrays(arrays: dict[str, Any], input_names: Sequence[str], output_names: Sequence[str], path: Path,
                        model: Any = None, streamed: bool = False, handle: Any = None, noun: str = "array",
                        fix: str = "remove or rename them", others: Sequence[str] | None = None) -> Dataset:
    """The Dataset of arrays named as in a data file (`x`, `y`, `x_<input>`, `y_<output>`, positional
    `x_0`..., optional `sample_weight`), validated, and checked against `model` (a LoadedModel) when
    given. `others`: for a file, the names it holds besides `arrays` (not read); then every array the
    model does not use is left out with a note. Without it (in-memory arrays) an array of another name
    is refused: "unknown <noun>(s) ...", with `fix` as the advice."""
    found = None if others is None else [*arrays, *others]
    x, x_keys = _pick(arrays, "x", input_names, path, "input", found)
    y, y_keys = _pick(arrays, "y", output_names, path, "target", found)
    used = x_keys + y_keys + (["sample_weight"] if "sample_weight" in arrays else [])
    unknown = sorted(set(arrays) - set(used))
    if unknown and others is None:
        raise DataFileError(path, f"unknown {noun}(s) {', '.join(repr(k) for k in unknown)}; this model reads "
                            f"{', '.join(repr(k) for k in x_keys + y_keys)} and optionally 'sample_weight'",
                            f"{fix} as in losscheck's data-file contract")
    ds = Dataset(path, x, y, arrays.get("sample_weight"), list(input_names), list(output_names), streamed, handle)
    ds.keys = (x_keys, y_keys)
    ignored = unknown + list(others or [])
    if ignored:
        ds.notes.append(ignored_note(path, ignored, used))
    _validate(ds, {k: arrays[k] for k in used})
    if model is not None:
        check_against_model(ds, model)
    return ds


def _data_format(path: Path) -> str:
    """"h5" or "npz", by content (then by suffix); a file that is neither is refused."""
    head = read_head(path, "data file", DataFileError)
    if head == H5_SIGNATURE or (not head.startswith(b"PK") and is_hdf5(path)):
        return "h5"
    if head.startswith(b"PK") or path.suffix.lower() == ".npz":
        return "npz"
    if head.startswith(b"\x93NUMPY"):
        raise DataFileError(path, "is a single .npy array, not an .npz with x and y",
                            "save it with numpy.savez(path, x=..., y=...)")
    if head[:2] == b"\x80\x04" or head[:2] == b"\x80\x05" or path.suffix.lower() in (".pkl", ".pickle"):
        raise DataFileError(path, "is a pickle, which losscheck never loads",
                            "save it with numpy.savez(path, x=..., y=...)")
    raise DataFileError(path, "is neither an .npz nor an HDF5 file", "pass a .npz or .h5 data file")


def load_data(path: Path, input_names: Sequence[str], output_names: Sequence[str], model: Any = None) -> Dataset:
    """Open the data file and map its arrays to the model's inputs and outputs. With `model` (a
    LoadedModel), also check that shapes and label kinds fit the model's inputs and losses."""
    path = Path(path)
    check_readable(path, "data file", DataFileError)
    keys = readable_keys(input_names, output_names)
    if _data_format(path) == "h5":
        arrays, others, handle = _h5_arrays(path, keys)
        streamed = True
    else:
        (arrays, others), handle = _npz_arrays(path, keys), None
        streamed = False
    try:
        return dataset_from_arrays(arrays, input_names, output_names, path, model, streamed, handle, others=others)
    except Exception:
        if handle is not None:
            handle.close()
        raise


def _validate(ds: Dataset, arrays: dict[str, Any]) -> None:
    path = ds.path
    for key, arr in arrays.items():
        try:
            dt = np.dtype(arr.dtype)
        except Exception as exc:
            raise DataFileError(path, f"array {key!r} has an unreadable dtype", "store numbers only") from exc
        if dt.kind not in "biuf":
            vlen = (dt.metadata or {}).get("vlen") if dt.kind == "O" else None
            what = ("strings (an HDF5 string dataset)" if vlen in (str, bytes)
                    else "Python objects (dtype=object)" if dt.kind == "O" else f"dtype {dt}")
            raise DataFileError(path, f"array {key!r} holds {what}, not numbers", "store numeric arrays only")
    x_keys, y_keys = ds.keys
    named = list(zip(x_keys, ds.x, strict=False)) + list(zip(y_keys, ds.y, strict=False))
    if ds.sample_weight is not None:
        named.append(("sample_weight", ds.sample_weight))
    for key, a in named:
        if len(a.shape) == 0:
            raise DataFileError(path, f"array {key!r} is a scalar; every array needs the sample axis first",
                                "store arrays of shape (n, ...)")
    counts = {int(a.shape[0]) for _, a in named}
    if len(counts) != 1:
        shapes = ", ".join(f"{k} {tuple(a.shape)}" for k, a in named)
        raise DataFileError(path, f"arrays disagree on the number of samples: {shapes}",
                            "x, y and sample_weight must have the same first dimension")
    if counts == {0}:
        raise DataFileError(path, "holds no samples (empty arrays)", "pass data with at least one sample")
    if ds.streamed:  # read one row of each dataset now: a damaged or unreadable dataset fails here, clearly
        for key, a in named:
            try:
                np.asarray(a[0:1])
                np.asarray(a[a.shape[0] - 1:])
            except Exception as exc:
                raise DataFileError(path, f"array {key!r} cannot be read ({type(exc).__name__}: {first_line(exc)})",
                                    "the file is damaged, or compressed with a filter h5py lacks; "
                                    "re-create it") from exc
    sw = ds.sample_weight
    if sw is not None and len(sw.shape) > 1 and len(ds.y) == 1:
        y_shape = tuple(ds.y[0].shape)
        if tuple(sw.shape) != y_shape[:len(sw.shape)] and not all(d == 1 for d in sw.shape[1:]):
            raise DataFileError(path, f"sample_weight has shape {tuple(sw.shape)}, which fits neither (n,) nor the "
                                f"target's {y_shape}", "store sample_weight as shape (n,) or matching the loss")
