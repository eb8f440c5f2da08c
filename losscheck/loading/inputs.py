"""What every command loads first: the model (compiled) and its data, validated against each other,
and the Keras facts the report header names."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from losscheck.core.config import Config


def input_names(model: Any) -> list[str]:
    """The model's input names, in order ("x" for a model without symbolic inputs)."""
    inputs = getattr(model, "inputs", None) or []
    names = [getattr(t, "name", None) or f"input_{i}" for i, t in enumerate(inputs)]
    return names or ["x"]


def load_inputs(cfg: Config, progress: Callable[[str], None]) -> tuple[Any, Any]:
    """(LoadedModel, Dataset or None): the Python API's in-memory inputs (cfg.inputs), or the model file
    and the data file (with the process's random seed set to cfg.seed)."""
    from losscheck._tf import keras
    from losscheck.loading.data import load_data
    from losscheck.loading.model import load_model

    if cfg.inputs is not None:  # the Python API: an in-memory model and/or data
        loaded, data = cfg.inputs.load(cfg, progress)
        return loaded, with_data_notes(loaded, data)
    keras.utils.set_random_seed(cfg.seed)
    progress(f"loading {cfg.model_path}")
    loaded = load_model(cfg.model_path, custom_objects_file=cfg.custom_objects, loss=cfg.loss, unsafe=cfg.unsafe)
    data = None
    if cfg.data_path is not None:
        progress(f"reading {cfg.data_path}")
        data = load_data(cfg.data_path, input_names(loaded.model), loaded.output_names, model=loaded)
    return loaded, with_data_notes(loaded, data)


def with_data_notes(loaded: Any, data: Any) -> Any:
    """`data`, its notes (arrays of a file left out, how a generator was read) added to the loaded
    model's, which every report shows."""
    for note in getattr(data, "notes", None) or ():
        if note not in loaded.notes:
            loaded.notes.append(note)
    return data


def keras_facts() -> dict[str, str]:
    """The Keras version and backend this process runs."""
    from losscheck._tf import keras

    return {"keras_version": keras.__version__, "backend": keras.backend.backend()}
