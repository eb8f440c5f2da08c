"""Data that is not a file: in-memory arrays and input pipelines (tf.data.Dataset, keras PyDataset).

Arrays become the same `Dataset` a .npz file gives. A pipeline becomes a `PipelineDataset`, which
offers the Dataset interface the probes use (`batches`, `batch_bounds`, `slice`, `n`) by iterating
the pipeline batch by batch, with the pipeline's own batching; it never holds more than the batch
being processed (`slice` concatenates only the rows it was asked for).

Every batch of a pipeline is `x`, `(x, y)` or `(x, y, sample_weight)` as Keras's fit accepts it; `x`
and `y` are one array, a list/tuple in the model's input/output order, or a dict keyed by input /
output names.

A Python generator yields such batches once: it is read whole, once (`read_generator`, within
GENERATOR_MEMORY, and refused when it loops), and its batches, held in memory, become a PyDataset
seen as a PipelineDataset, so that every figure and Keras's own fit and evaluate see the same batches.
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import re
import sys
import types
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from losscheck.core.errors import DataFileError, LosscheckError, UsageError, first_line
from losscheck.loading.archive import available_memory
from losscheck.loading.data import NPZ_MEMORY_SHARE, Dataset, _validate, check_against_model, dataset_from_arrays
from losscheck.loading.h5_guard import size_text

#: the first batches whose targets fingerprint a pass's order (shuffle detection)
FINGERPRINT_BATCHES = 2


def columns(value: Any, names: Sequence[str], what: str, where: str) -> list[Any]:
    """One array per name from a single array, a list/tuple (positional) or a dict (by name)."""
    names = list(names)
    if isinstance(value, dict):
        if len(names) == 1 and len(value) == 1:
            return [next(iter(value.values()))]
        missing = [n for n in names if n not in value]
        if missing:
            raise UsageError(f"{where}: {what} is a dict with keys {sorted(map(str, value))}, but the model's "
                             f"{what}s are named {names}; key it by those names")
        return [value[n] for n in names]
    if isinstance(value, (list, tuple)) and len(names) > 1:
        if len(value) != len(names):
            raise UsageError(f"{where}: {what} has {len(value)} entries but the model has {len(names)} {what}s "
                             f"({names}); give one array per {what}, in order, or a dict keyed by name")
        return list(value)
    if isinstance(value, (list, tuple)) and len(value) == 1 and hasattr(value[0], "shape"):
        return [value[0]]
    return [value]


def _numpy(value: Any) -> np.ndarray:
    return value.numpy() if hasattr(value, "numpy") else np.asarray(value)


def _keys(prefix: str, names: Sequence[str]) -> list[str]:
    """The data-file names of in-memory arrays (for messages): `x`, or `x_<name>` for several."""
    return [prefix] if len(names) == 1 else [f"{prefix}_{n}" for n in names]


def arrays_dataset(x: Any, y: Any, sample_weight: Any, input_names: Sequence[str],
                   output_names: Sequence[str], loaded: Any = None, label: str = "<arrays>") -> Dataset:
    """In-memory arrays (numpy, tensors, lists) as the Dataset a .npz gives, validated the same way."""
    if x is None or y is None:
        raise UsageError(f"{label}: pass both x and y (or data=(x, y[, sample_weight]))")
    xs = [_numpy(a) for a in columns(x, input_names, "input", label)]
    ys = [_numpy(a) for a in columns(y, output_names, "output", label)]
    sw = None if sample_weight is None else _numpy(sample_weight)
    if isinstance(sample_weight, (dict, list, tuple)) and len(output_names) > 1:
        raise UsageError(f"{label}: one sample_weight array for all outputs is supported, not one per output")
    ds = Dataset(Path(label), xs, ys, sw, list(input_names), list(output_names), streamed=False)
    ds.keys = (_keys("x", input_names), _keys("y", output_names))
    named = dict(zip(ds.keys[0], xs, strict=True)) | dict(zip(ds.keys[1], ys, strict=True))
    if sw is not None:
        named["sample_weight"] = sw
    _validate(ds, named)
    if loaded is not None:
        check_against_model(ds, loaded)
    return ds


def dict_dataset(arrays: dict[str, Any], input_names: Sequence[str], output_names: Sequence[str],
                 loaded: Any = None, label: str = "<dict of arrays>") -> Dataset:
    """A dict of arrays named as in a data file (`x`, `y`, `x_<input>`, `y_<output>`, positional
    `x_0`..., optional `sample_weight`), as the Dataset that file would give."""
    arrays = {str(k): _numpy(v) for k, v in arrays.items()}
    return dataset_from_arrays(arrays, input_names, output_names, Path(label), loaded, noun="key", fix="name them")


def is_pipeline(value: Any) -> bool:
    """A tf.data.Dataset or a keras.utils.PyDataset (checked without importing TensorFlow first)."""
    if isinstance(value, (str, Path, tuple, list, dict, np.ndarray)):
        return False
    from losscheck._tf import keras, tf

    return isinstance(value, (tf.data.Dataset, keras.utils.PyDataset))


class PipelineDataset:
    """A tf.data.Dataset or PyDataset seen through the Dataset interface, streamed batch by batch."""

    streamed = True
    pipeline = True

    def __init__(self, source: Any, input_names: Sequence[str], output_names: Sequence[str],
                 label: str | None = None) -> None:
        from losscheck._tf import keras, tf

        self.source = source
        self.is_tf_data = isinstance(source, tf.data.Dataset)
        self.path = Path(label or ("<tf.data.Dataset>" if self.is_tf_data else f"<{type(source).__name__}>"))
        self.input_names, self.output_names = list(input_names), list(output_names)
        self.x: list[Any] = []  # no whole arrays: see batches()
        self.y: list[Any] = []
        self.keys: tuple[list[str], list[str]] = ([], [])
        self.notes: list[str] = []
        self.generator = False  # the batches a Python generator yielded (see generator_dataset)
        self._sizes: list[int] | None = None
        self.fingerprints: list[str] = []
        if self.is_tf_data:
            card = int(source.cardinality())
            if card == int(tf.data.INFINITE_CARDINALITY):
                raise UsageError(f"{self.path}: the dataset is infinite (repeat() without a count); pass a finite "
                                 "one, e.g. dataset.take(steps)")
        else:
            if not isinstance(source, keras.utils.PyDataset):
                raise UsageError(f"{self.path}: not a tf.data.Dataset or keras.utils.PyDataset")
            if self._num_batches() is None:
                raise UsageError(f"{self.path}: the PyDataset has no length (infinite); give it a __len__")
        first = next(self._elements(), None)
        if first is None:
            raise DataFileError(self.path, "yields no batches", "pass a pipeline with at least one batch")
        _xs, _ys, sw = self._split(first)
        self.has_sample_weight = sw is not None

    # -- iteration -----------------------------------------------------------------------------
    def _num_batches(self) -> int | None:
        n = getattr(self.source, "num_batches", None)
        if n is None:
            try:
                n = len(self.source)
            except TypeError:
                return None
        return None if n is None else int(n)

    def _elements(self) -> Iterator[Any]:
        if self.is_tf_data:
            from losscheck._tf import tf

            iterator = iter(self.source)
            while True:
                try:
                    element = next(iterator)
                except StopIteration:
                    return
                except tf.errors.OpError as exc:  # a damaged record, a parse function failing on one
                    raise DataFileError(self.path, f"the pipeline failed while reading ({type(exc).__name__}: "
                                        f"{first_line(exc)})", "check the files and the parse function") from exc
                yield element
        else:
            for i in range(self._num_batches() or 0):
                yield self.source[i]

    def _split(self, element: Any) -> tuple[list[np.ndarray], list[np.ndarray], np.ndarray | None]:
        from losscheck._tf import keras

        if isinstance(element, list):
            element = tuple(element)
        if not isinstance(element, tuple) or not 2 <= len(element) <= 3:
            raise DataFileError(self.path, "yields batches without targets; each batch must be (x, y) or "
                                "(x, y, sample_weight)", "map the pipeline to (inputs, targets) pairs")
        x, y, sw = keras.utils.unpack_x_y_sample_weight(element)
        if y is None:
            raise DataFileError(self.path, "yields batches whose targets are None", "map it to (inputs, targets)")
        where = str(self.path)
        xs = [_numpy(a) for a in columns(x, self.input_names, "input", where)]
        ys = [_numpy(a) for a in columns(y, self.output_names, "output", where)]
        if isinstance(sw, (dict, list, tuple)):
            if len(sw) != 1:
                raise UsageError(f"{where}: one sample_weight array per batch is supported, not one per output")
            sw = next(iter(sw.values())) if isinstance(sw, dict) else sw[0]
        return xs, ys, None if sw is None else _numpy(sw)

    def batches(self, batch_size: int | None = None, limit: int | None = None
                ) -> Iterator[tuple[int, int, list[np.ndarray], list[np.ndarray], np.ndarray | None]]:
        """(start, stop, xs, ys, sample_weight) per batch of the pipeline (its own batch size; the
        argument is ignored), for the first `limit` samples (the last batch cut there). A full pass
        records the batch sizes; every pass records the fingerprint of its first batches' targets."""
        start, sizes = 0, []
        digest = hashlib.sha1()
        for i, element in enumerate(self._elements()):
            xs, ys, sw = self._split(element)
            n = int(xs[0].shape[0]) if xs[0].ndim else 1
            if i < FINGERPRINT_BATCHES:
                for a in ys:
                    digest.update(np.ascontiguousarray(a).tobytes())
                if i == FINGERPRINT_BATCHES - 1:
                    self.fingerprints.append(digest.hexdigest())
            if limit is not None and start + n >= limit:
                cut = limit - start
                yield start, limit, [a[:cut] for a in xs], [a[:cut] for a in ys], None if sw is None else sw[:cut]
                if start + n > limit:
                    return
            else:
                yield start, start + n, xs, ys, sw
            sizes.append(n)
            start += n
            if limit is not None and start >= limit:
                return
        if len(sizes) < FINGERPRINT_BATCHES:
            self.fingerprints.append(digest.hexdigest())
        self._sizes = sizes

    @property
    def sizes(self) -> list[int]:
        if self._sizes is None:
            for _ in self.batches():
                pass
        assert self._sizes is not None
        return self._sizes

    @property
    def n(self) -> int:
        return sum(self.sizes)

    @property
    def batch_size(self) -> int:
        return self.sizes[0]

    @property
    def sample_weight(self) -> Any:
        """Only whether there are sample weights (`is not None`); the values come with each batch."""
        return True if self.has_sample_weight else None

    def batch_bounds(self, batch_size: int | None = None, limit: int | None = None) -> Iterator[tuple[int, int]]:
        start = 0
        for n in self.sizes:
            if limit is not None and start >= limit:
                return
            yield start, start + n if limit is None else min(start + n, limit)
            start += n

    def slice(self, start: int, stop: int) -> tuple[list[np.ndarray], list[np.ndarray], np.ndarray | None]:
        """Rows start:stop, read by iterating the pipeline up to them."""
        parts: list[tuple[list[np.ndarray], list[np.ndarray], np.ndarray | None]] = []
        for b0, b1, xs, ys, sw in self.batches(limit=stop):
            lo, hi = max(start, b0) - b0, min(stop, b1) - b0
            if lo < hi:
                parts.append(([a[lo:hi] for a in xs], [a[lo:hi] for a in ys], None if sw is None else sw[lo:hi]))
        if not parts:
            raise DataFileError(self.path, f"has no rows {start}:{stop}", "check the pipeline")
        xs = [np.concatenate([p[0][i] for p in parts]) for i in range(len(parts[0][0]))]
        ys = [np.concatenate([p[1][i] for p in parts]) for i in range(len(parts[0][1]))]
        sw = None if parts[0][2] is None else np.concatenate([p[2] for p in parts])
        return xs, ys, sw

    def keras_input(self) -> Any:
        """What model.fit receives: the pipeline itself."""
        return self.source

    def order_changed(self) -> bool:
        """Whether passes over the pipeline gave its batches in different orders (it shuffles): the
        passes so far, plus one more look at the first batches."""
        for _ in itertools.islice(self.batches(), FINGERPRINT_BATCHES):
            pass
        return len(set(self.fingerprints)) > 1

    def close(self) -> None:
        pass


#: a Python generator is read once and its batches held in memory: at most this many batches and
#: bytes of them (and at most the share of the available memory an .npz may take)
GENERATOR_BATCHES, GENERATOR_MEMORY = 100_000, 2 << 30


def is_generator(value: Any) -> bool:
    """A Python generator, as model.fit accepts one (Keras takes no other iterator)."""
    return isinstance(value, types.GeneratorType)


def _stored(value: Any) -> Any:
    """A batch with its arrays copied to numpy (a generator may refill one buffer between batches),
    its structure (tuples, lists, dicts, None) kept."""
    if value is None:
        return None
    if isinstance(value, dict):
        return {k: _stored(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        items = [_stored(v) for v in value]
        return items if isinstance(value, list) else tuple(items)
    return np.array(_numpy(value), copy=True)


def _leaves(value: Any) -> Iterator[np.ndarray]:
    if isinstance(value, dict):
        for v in value.values():
            yield from _leaves(v)
    elif isinstance(value, (list, tuple)):
        for v in value:
            yield from _leaves(v)
    elif value is not None:
        yield value


def _digest(batch: Any) -> bytes:
    h = hashlib.sha1()
    for a in _leaves(batch):
        h.update(f"{a.dtype.str}{a.shape}".encode())
        h.update(np.ascontiguousarray(a).data if a.dtype.kind != "O" else repr(a.tolist()).encode())
    return h.digest()


def _batches_word(n: int) -> str:
    return f"{n} batch" if n == 1 else f"{n} batches"


def read_generator(gen: Any, label: str) -> list[Any]:
    """Every batch the generator yields, copied, in order. A generator that yields its first batches
    again (a `while True` loop over the data, which Keras runs only with steps=) or whose batches pass
    the memory bound is refused with one line saying how to bound it; its exceptions are usage errors."""
    limit = int(min(GENERATOR_MEMORY, NPZ_MEMORY_SHARE * available_memory()))
    batches: list[Any] = []
    digests: list[bytes] = []
    held, period = 0, 0  # period: the length of the repeat being followed (0: none)
    try:
        while True:
            try:
                with contextlib.redirect_stdout(sys.stderr):  # stdout is the report's
                    batch = next(gen)
            except StopIteration:
                return batches
            except LosscheckError:
                raise
            except BaseException as exc:
                if isinstance(exc, KeyboardInterrupt):
                    raise
                raise UsageError(f"{label}: the generator failed at batch {len(batches) + 1}: "
                                 f"{type(exc).__name__}: {first_line(exc)}") from exc
            batch = _stored(batch)
            i, digest = len(batches), _digest(batch)
            if period and digest != digests[i - period]:
                period = 0
            if not period and i and digest == digests[0]:
                period = i
            if period and i == 2 * period - 1:
                raise UsageError(f"{label}: the generator yields its first {_batches_word(period)} again from batch "
                                 f"{period + 1} on: it loops over the data without end (Keras runs such a generator "
                                 f"only with steps={period}); losscheck reads one pass, so let the generator stop "
                                 f"after {_batches_word(period)} (e.g. `for _ in range(steps)` instead of "
                                 "`while True`)")
            held += sum(int(a.nbytes) for a in _leaves(batch))
            if held > limit or i + 1 > GENERATOR_BATCHES:
                raise UsageError(f"{label}: the generator yielded {_batches_word(i + 1)} ({size_text(held)}) without "
                                 f"ending; losscheck reads a generator once and holds its batches in memory, at most "
                                 f"{GENERATOR_BATCHES} batches and {size_text(limit)}: if it never ends (Keras needs "
                                 "steps= for such a generator), let it stop after one pass over the data; for more "
                                 "data return a keras.utils.PyDataset or a tf.data.Dataset, which losscheck streams")
            batches.append(batch)
            digests.append(digest)
    finally:
        with contextlib.suppress(Exception):
            gen.close()


def generator_dataset(gen: Any, input_names: Sequence[str], output_names: Sequence[str],
                      label: str = "<generator>") -> PipelineDataset:
    """A Python generator's batches (read once, see read_generator) as a PipelineDataset over a
    PyDataset holding them: every figure, and the fit and evaluate Keras runs, take the same batches
    in the order the generator yielded them."""
    from losscheck._tf import keras

    class GeneratorBatches(keras.utils.PyDataset):
        """The batches a generator yielded, in order."""

        def __init__(self, batches: list[Any]) -> None:
            super().__init__()
            self.batches = batches

        def __len__(self) -> int:
            return len(self.batches)

        def __getitem__(self, index: int) -> Any:
            return self.batches[index]

    batches = read_generator(gen, label)
    data = PipelineDataset(GeneratorBatches(batches), input_names, output_names, label)
    data.generator = True
    held = sum(int(a.nbytes) for b in batches for a in _leaves(b))
    data.notes.append(f"{label}: a Python generator, read once: its {_batches_word(len(batches))} ({data.n} "
                      f"samples, {size_text(held)}) are held in memory, and every figure, Keras's own evaluate and "
                      "fit included, uses them in the order it yielded them")
    return data


def data_measurements(data: Any, batch_size: int) -> Any:
    """The data facts the data rules read (a DataMeasurements). Call it after every pass: whether a
    pipeline shuffles is told by the orders its passes gave (and one more look at its first batches).
    `batch_size`: the one arrays are batched by (a pipeline batches itself)."""
    from losscheck.measurements.data import DataMeasurements

    pipeline = bool(getattr(data, "pipeline", False))
    return DataMeasurements(path=str(getattr(data, "path", "")), samples=int(data.n),
                            batch_size=data.batch_size if pipeline else batch_size,
                            pipeline=pipeline, shuffled=pipeline and data.order_changed())


# ----------------------------------------------------------------------------------------------
# The command line's pipelines: DATA as FILE.py:FUNC, or a folder of TFRecord files with --parse
# ----------------------------------------------------------------------------------------------
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
