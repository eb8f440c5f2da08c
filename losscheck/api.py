"""The Python API: `losscheck.compare / breakdown / inspect` on an in-memory model or a file, with
data as a file, arrays, a tf.data.Dataset, a keras.utils.PyDataset or a Python generator. Same figures
and findings as the command line; returns the Report (nothing printed). TensorFlow is imported on the
first call.

An in-memory model is used as it is (never recompiled or saved) and left exactly as it was: every
variable, the optimizer's and the metrics' state, fit's attributes, and the process's random state
(see loading.memory.preserved). A tf.data.Dataset or PyDataset is streamed with its own batching
(as Keras does: `batch_size` then does not apply) and never materialized; a generator, which can be
read only once, is read whole once and its batches held in memory (loading.generators.read_generator).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from losscheck.core.errors import UsageError
from losscheck.core.gate import FAIL_ON, Gate, codes
from losscheck.report.model import Report

PER = {"class": "per_class", "output": "per_output", "sample": "per_sample"}


def _class_weight(value: Any) -> dict[int, float] | None:
    if value is None:
        return None
    if isinstance(value, (str, Path)):
        from losscheck.preflight import parse_class_weight

        return parse_class_weight(str(value))
    try:
        return {int(k): float(v) for k, v in dict(value).items()} or None
    except (TypeError, ValueError) as exc:
        raise UsageError(f"class_weight: {value!r} is not a mapping of class index -> weight") from exc


def _gate(fail_on: str = "error", max_gap: float | None = None, select: Any = None, ignore: Any = None) -> Gate:
    """The API's exit-code policy (what --fail-on, --max-gap, --select and --ignore are on the command line)."""
    if fail_on not in FAIL_ON:
        raise UsageError(f"fail_on must be one of {', '.join(FAIL_ON)}, not {fail_on!r}")
    return Gate(fail_on=fail_on, select=codes(select, "select"), ignore=codes(ignore, "ignore"), max_gap=max_gap)


def _is_path(value: Any) -> bool:
    return isinstance(value, (str, Path))


class _Inputs:
    """What `loading.inputs.load_inputs` returns for the API: the model (in memory, or loaded from its file)
    and the data (a file, arrays, a dict of arrays, or a pipeline), validated against each other."""

    def __init__(self, model: Any, data: Any, x: Any, y: Any, sample_weight: Any,
                 custom_objects: dict[str, Any], needs_data: bool, validation: Any = None) -> None:
        self.model, self.data, self.x, self.y, self.sample_weight = model, data, x, y, sample_weight
        self.custom_objects, self.needs_data, self.validation = custom_objects, needs_data, validation

    def load(self, cfg, progress: Callable[[str], None]):
        from losscheck._tf import keras
        from losscheck.loading.inputs import input_names
        from losscheck.loading.memory import loaded_in_memory
        from losscheck.loading.model import load_model

        keras.utils.set_random_seed(cfg.seed)
        if self.model is not None:
            loaded = loaded_in_memory(self.model, self.custom_objects)
        else:
            progress(f"loading {cfg.model_path}")
            loaded = load_model(cfg.model_path, custom_objects_file=cfg.custom_objects, loss=cfg.loss,
                                unsafe=cfg.unsafe, custom_objects=self.custom_objects)
        if not self.needs_data:
            return loaded, None
        progress(f"reading {cfg.data_path}")
        if callable(self.data) and not is_data_object(self.data):  # a function that builds the data
            self.data = self.data()
        data = make_data(self.data, self.x, self.y, self.sample_weight, loaded,
                         input_names(loaded.model), loaded.output_names, label=cfg.data_path)
        return loaded, data

    def load_validation(self, loaded):
        """The validation data (`validation_data=`, any form `data` takes) as a Dataset or PipelineDataset,
        validated against the loaded model the same way as the data."""
        from losscheck.loading.inputs import input_names

        if callable(self.validation) and not is_data_object(self.validation):
            self.validation = self.validation()
        return make_data(self.validation, None, None, None, loaded, input_names(loaded.model), loaded.output_names)


def is_data_object(value: Any) -> bool:
    """A pipeline object (which may be callable, as a Keras layer is not): not a data-building function."""
    from losscheck.loading.pipelines import is_pipeline

    return is_pipeline(value)


def make_data(data: Any, x: Any, y: Any, sample_weight: Any, loaded: Any, inputs: list[str], outputs: list[str],
              label: Any = None):
    """A Dataset (file, arrays, dict of arrays) or a PipelineDataset (tf.data, PyDataset, the batches of a
    Python generator). `label`: what messages call the data (default: its kind)."""
    from losscheck.loading.arrays import arrays_dataset, dict_dataset
    from losscheck.loading.data import load_data
    from losscheck.loading.generators import generator_dataset, is_generator
    from losscheck.loading.pipelines import PipelineDataset, is_pipeline
    from losscheck.loading.sources import function_data, is_function_spec

    if data is not None and (x is not None or y is not None):
        raise UsageError("pass either data= or x=/y=, not both")
    if data is None:
        if x is None:
            raise UsageError("no data: pass data= (a file, (x, y[, sample_weight]), a tf.data.Dataset or a "
                             "PyDataset) or x= and y=")
        return arrays_dataset(x, y, sample_weight, inputs, outputs, loaded)
    if sample_weight is not None:
        raise UsageError("sample_weight= goes with x=/y=; with data=, put the weights in the data")
    if _is_path(data) and is_function_spec(str(data)):  # FILE.py:FUNC, as on the command line
        data = function_data(str(data))
    if _is_path(data):
        return load_data(Path(data), inputs, outputs, model=loaded)
    if isinstance(data, (tuple, list)):
        if not 2 <= len(data) <= 3:
            raise UsageError(f"data is a {type(data).__name__} of {len(data)} items; give (x, y) or "
                             "(x, y, sample_weight)")
        return arrays_dataset(data[0], data[1], data[2] if len(data) == 3 else None, inputs, outputs, loaded)
    if isinstance(data, dict):
        return dict_dataset(data, inputs, outputs, loaded)
    if is_generator(data):
        return generator_dataset(data, inputs, outputs, str(label or "<generator>"))
    if is_pipeline(data):
        return PipelineDataset(data, inputs, outputs)
    raise UsageError(f"data of type {type(data).__name__} is not supported; pass a file path, (x, y[, "
                     "sample_weight]) arrays, a dict of arrays, a tf.data.Dataset, a keras.utils.PyDataset or a "
                     "Python generator")


def data_label(data: Any) -> str:
    if data is None:
        return "<arrays>"
    if _is_path(data):
        return str(data)
    if isinstance(data, (tuple, list)):
        return "<arrays>"
    if isinstance(data, dict):
        return "<dict of arrays>"
    name = type(data).__name__
    return "<tf.data.Dataset>" if "Dataset" in name and "tensorflow" in type(data).__module__ else f"<{name}>"


def _validation(validation_data: Any, validation_split: Any, history: Any) -> tuple[Path | None, float | None,
                                                                                     Path | None]:
    """(label of validation_data, validation_split, history path) as Config takes them."""
    from losscheck.preflight import check_validation

    split = check_validation(validation_data, validation_split, "validation_data=", "validation_split=")
    label = None if validation_data is None else Path(data_label(validation_data))
    return label, split, (Path(history) if history is not None and _is_path(history) else None)


def _config(model_or_path: Any, data: Any, x: Any, y: Any, sample_weight: Any, needs_data: bool, *,
            batch_size: int = 32, seed: int = 0, class_weight: Any = None, custom_objects: Any = None,
            loss: Any = None, rtol: float = 1e-4, probe_samples: int | None = None, unsafe: bool = False,
            validation_data: Any = None, validation_split: Any = None, history: Any = None):
    from losscheck.core.config import Config
    from losscheck.loading.memory import LABEL

    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise UsageError(f"batch_size must be a positive int, not {batch_size!r}")
    in_memory = not _is_path(model_or_path)
    if in_memory:
        from losscheck._tf import keras

        if not isinstance(model_or_path, keras.Model):
            raise UsageError(f"model_or_path is a {type(model_or_path).__name__}: pass a compiled keras.Model or "
                             "the path of a .keras/.h5 file")
        if loss is not None:
            raise UsageError("loss= overrides a model file's loss; an in-memory model is checked with the loss "
                             "it was compiled with (compile it with the loss you want to check)")
    objects_file: Path | None = None
    objects: dict[str, Any] = {}
    if _is_path(custom_objects):
        objects_file = Path(custom_objects)
    elif custom_objects is not None:
        objects = dict(custom_objects)
    val_path, split, history_path = _validation(validation_data, validation_split, history)
    inputs = _Inputs(model_or_path if in_memory else None, data, x, y, sample_weight, objects, needs_data,
                     validation_data)
    return Config(
        model_path=Path(LABEL) if in_memory else Path(model_or_path),
        data_path=Path(data_label(data)) if needs_data else None,
        batch_size=batch_size, custom_objects=objects_file, loss=loss, class_weight=_class_weight(class_weight),
        unsafe=unsafe, seed=int(seed), rtol=float(rtol), probe_samples=probe_samples, inputs=inputs,
        val_path=val_path, validation_split=split, history_path=history_path,
        history=None if history is None or _is_path(history) else _history_in_memory(history),
    ), (model_or_path if in_memory else None)


def _history_in_memory(history: Any) -> Any:
    from losscheck.loading.history import history_in_memory

    return history_in_memory(history)


def _processes(distribute: Any, processes: Any, model_or_path: Any, data: Any) -> Any:
    """This process's place in a multi-process run (core.shards.ProcessSpec), from `processes` or
    Keras's environment variables; None for the other `distribute` values."""
    from losscheck.cli.launch import process_spec

    if distribute not in (None, "mirrored", "multi-process"):
        raise UsageError(f"distribute must be 'mirrored' or 'multi-process', not {distribute!r}")
    if distribute != "multi-process":
        if processes is not None:
            raise UsageError("processes= is for distribute='multi-process'")
        return None
    if not _is_path(model_or_path) or not _is_path(data):
        raise UsageError("distribute='multi-process' needs the model and the data as files (each process loads "
                         "them after joining the run)")
    given: dict[str, Any] = {"distribute": distribute}
    if processes is not None:
        try:
            coordinator, count, me = processes
        except (TypeError, ValueError):
            raise UsageError("processes must be (\"HOST:PORT\", number of processes, this process's id), not "
                             f"{processes!r}") from None
        given.update(coordinator=str(coordinator), num_processes=int(count), process_id=int(me))
    return process_spec(given)


@contextlib.contextmanager
def _python_random_kept():
    """Python's and NumPy's random state as they were: taken before anything imports TensorFlow, whose
    first import draws from Python's."""
    import random

    import numpy as np

    py_state, np_state = random.getstate(), np.random.get_state()
    try:
        yield
    finally:
        random.setstate(py_state)
        np.random.set_state(np_state)


@contextlib.contextmanager
def _guard(model: Any):
    """The in-memory model, and always TensorFlow's and Keras's random state, left as they were."""
    from losscheck.loading.memory import preserved, random_state_preserved

    with preserved(model) if model is not None else random_state_preserved():
        yield


def compare(model_or_path: Any, data: Any = None, *, x: Any = None, y: Any = None, sample_weight: Any = None,
            batch_size: int = 32, seed: int = 0, class_weight: Any = None, custom_objects: Any = None,
            loss: Any = None, rtol: float = 1e-4, probe_samples: int | None = None, unsafe: bool = False,
            fail_on: str = "error", max_gap: float | None = None, select: Any = None, ignore: Any = None,
            validation_data: Any = None, validation_split: float | None = None, history: Any = None,
            parity: Any = None, fit_epochs: int = 1, epoch: int | None = None, distribute: str | None = None,
            processes: Any = None, progress: Callable[[str], None] | None = None) -> Report:
    """Every loss figure (fit_epoch, train_mode*, evaluate, manual, regularization), every gap explained:
    what `losscheck compare MODEL DATA` reports. `data`: a file path, `(x, y[, sample_weight])`, a dict
    of arrays keyed as in a data file, a tf.data.Dataset, a keras.utils.PyDataset, a Python generator (read
    once, its batches held in memory) or "FILE.py:FUNC";
    or pass x=, y=. `validation_data` (any form `data` takes), `validation_split` and `history` (a
    path, or the History fit returned, or its .history dict) are `--val`, `--validation-split` and
    `--history`: they add evaluate_val and fit_val, and fit_logged (val_loss_logged) of the epoch
    `epoch` (`--epoch`; default: the one the log points to).
    `parity` ("backends,jit,float32" or a list of them) is `--parity` (other backends need a model and
    data given as files); `fit_epochs` is `--fit-epochs`. `distribute` is `--distribute` ("mirrored", or
    "multi-process" with the model and data given as files: call it in each process of the run, with
    `processes=("HOST:PORT", N, I)` (the coordinator, the number of processes, this one's id) or
    Keras's KERAS_DISTRIBUTION_* variables set; process 0's report and every other's are the same)."""
    import dataclasses

    from losscheck.commands.compare import run_compare
    from losscheck.preflight import parse_parity

    settings = parse_parity(parity)
    with _python_random_kept():
        gate = _gate(fail_on, max_gap, select, ignore)
        cfg, model = _config(model_or_path, data, x, y, sample_weight, True, batch_size=batch_size, seed=seed,
                             class_weight=class_weight, custom_objects=custom_objects, loss=loss, rtol=rtol,
                             probe_samples=probe_samples, unsafe=unsafe, validation_data=validation_data,
                             validation_split=validation_split, history=history)
        if isinstance(fit_epochs, bool) or not isinstance(fit_epochs, int) or fit_epochs < 1:
            raise UsageError(f"fit_epochs must be a positive int, not {fit_epochs!r}")
        if epoch is not None and (isinstance(epoch, bool) or not isinstance(epoch, int) or epoch < 1):
            raise UsageError(f"epoch must be a positive int (epochs are numbered from 1), not {epoch!r}")
        cfg = dataclasses.replace(cfg, parity=settings, fit_epochs=fit_epochs, epoch=epoch, distribute=distribute,
                                  processes=_processes(distribute, processes, model_or_path, data))
        with _guard(model):
            return gate.apply(run_compare(cfg, progress or (lambda _m: None)))


def breakdown(model_or_path: Any, data: Any = None, *, x: Any = None, y: Any = None, sample_weight: Any = None,
              per: str = "class", top: int = 10, batch_size: int = 32, seed: int = 0, custom_objects: Any = None,
              loss: Any = None, rtol: float = 1e-4, unsafe: bool = False, fail_on: str = "error",
              select: Any = None, ignore: Any = None, progress: Callable[[str], None] | None = None) -> Report:
    """Where the loss comes from: `per="class" | "output" | "sample"` (worst `top` samples), adding back
    up to evaluate: what `losscheck breakdown --per-...` reports."""
    from losscheck.commands.breakdown import run_breakdown

    mode = PER.get(per, per)
    if mode not in PER.values():
        raise UsageError(f"per must be one of {', '.join(PER)}, not {per!r}")
    with _python_random_kept():
        gate = _gate(fail_on, None, select, ignore)
        cfg, model = _config(model_or_path, data, x, y, sample_weight, True, batch_size=batch_size, seed=seed,
                             custom_objects=custom_objects, loss=loss, rtol=rtol, unsafe=unsafe)
        with _guard(model):
            return gate.apply(run_breakdown(cfg, mode, int(top), progress or (lambda _m: None)))


def inspect(model_or_path: Any, *, custom_objects: Any = None, loss: Any = None, unsafe: bool = False,
            fail_on: str = "error", select: Any = None, ignore: Any = None,
            progress: Callable[[str], None] | None = None) -> Report:
    """No data: loss configuration, training-dependent layers, regularizers, static findings: what
    `losscheck inspect MODEL` reports."""
    from losscheck.commands.inspect import run_inspect

    with _python_random_kept():
        gate = _gate(fail_on, None, select, ignore)
        cfg, model = _config(model_or_path, None, None, None, None, False, custom_objects=custom_objects,
                             loss=loss, unsafe=unsafe)
        with _guard(model):
            return gate.apply(run_inspect(cfg, progress or (lambda _m: None)))
