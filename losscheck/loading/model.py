"""Load a Keras model file (Keras 3 .keras/.h5, tf.keras 2.x .h5) and compile it from the file's own
compile configuration, recovering what Keras 3 cannot compile on load (legacy compile configs).

Always `load_model(compile=False)`, then: loss/loss_weights/optimizer parsed from the file (or
--loss), `model.compile(...)`, optimizer state restored from the file when the shapes fit
(loading/compile.py, loading/optimizer.py); why a file does not load: loading/load_errors.py.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from losscheck import interrupts, usercode
from losscheck._tf import keras
from losscheck.core.errors import ModelFileError
from losscheck.loading.compile import LoadedModel, compile_loaded, loss_override
from losscheck.loading.custom_objects import import_custom_objects
from losscheck.loading.files import ModelFileInfo, read_model_file_info
from losscheck.loading.legacy_h5 import Unfixable, fixable, leftovers, load_patched
from losscheck.loading.load_errors import load_error, missing_custom_object, newer_keras_error


@contextlib.contextmanager
def _keras_path(info: ModelFileInfo) -> Iterator[str]:
    """A path Keras dispatches correctly, never one in the model's own folder: Keras picks the loader
    by extension (case-sensitive), and unpacks the weights of a large .keras file (when it thinks
    memory is short) into a temporary directory beside the file it opened. So a .keras file, and a
    file whose name does not say what it holds (model.H5, model.bin), is reached through a symbolic
    link with the right extension in a private temporary directory, removed afterwards."""
    want = ".keras" if info.format == "keras" else ".h5"
    name = str(info.path)
    if info.format == "h5" and name.endswith((".h5", ".hdf5")):
        yield name
        return
    tmp = tempfile.mkdtemp(prefix="losscheck-")
    try:
        link = os.path.join(tmp, "model" + want)
        os.symlink(os.path.abspath(name), link)
        yield link
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _keras_load(info: ModelFileInfo, custom_objects: dict[str, Any], unsafe: bool,
                custom_objects_file: Path | None = None):
    path = info.path
    custom_objects = dict(custom_objects)
    error: Exception | None = None
    for _ in range(16):
        try:
            with _keras_path(info) as target:
                model = keras.saving.load_model(target, custom_objects=custom_objects or None, compile=False,
                                                safe_mode=not unsafe)
            interrupts.check()  # Keras's reading of the weights swallows KeyboardInterrupt
            return model
        except Exception as exc:  # noqa: BLE001 - any load failure is explained below or re-raised
            error = exc
            # registered objects are looked up as "Package>Name": offer the user's "Name" under that name too
            if not _alias_registered(str(exc), custom_objects):
                break
    assert error is not None
    theirs = usercode.explain(error)  # the user's custom layer (or other object) raised while Keras built it
    if theirs is not None:
        raise theirs from error
    if info.format == "h5" and (leftovers(str(error)) is not None or (info.legacy and fixable(str(error)))):
        return _load_h5_without_leftovers(info, error, custom_objects, unsafe, custom_objects_file)
    newer = newer_keras_error(info, error)
    if newer is not None:
        raise newer from error
    raise load_error(path, error, custom_objects_file, legacy=info.legacy) from error


def _alias_registered(text: str, custom_objects: dict[str, Any]) -> bool:
    """If Keras missed "Package>Name" and the user's file defines Name, add the alias; True if added."""
    names = re.findall(r"'registered_name': '([^']+)'", text)
    what = missing_custom_object(text)
    added = False
    for name in ([what] if what else []) + names:
        if ">" in name and name not in custom_objects and name.split(">")[-1] in custom_objects:
            custom_objects[name] = custom_objects[name.split(">")[-1]]
            added = True
    return added


def _load_h5_without_leftovers(info: ModelFileInfo, exc: Exception, custom_objects: dict[str, Any], unsafe: bool,
                               custom_objects_file: Path | None):
    """tf.keras layer options Keras 3 rejects but that change nothing (legacy_h5.HARMLESS): load without them."""
    try:
        model, dropped = load_patched(info.path, exc, dict(custom_objects), safe_mode=not unsafe)
    except Unfixable as why:
        raise ModelFileError(info.path, f"Keras 3 cannot rebuild this tf.keras model: {why}",
                             "rebuild the model in Keras 3 and load the weights into it") from exc
    except Exception as err:
        raise load_error(info.path, err, custom_objects_file, legacy=info.legacy) from err
    note = ("the tf.keras model config was adapted for Keras 3 in memory, without changing what it computes: "
            f"{'; '.join(dropped)}")
    if note not in info.load_notes:
        info.load_notes.append(note)
    return model


def load_model(path: Path, *, custom_objects_file: Path | None = None, loss: Any = None,
               unsafe: bool = False, custom_objects: dict[str, Any] | None = None) -> LoadedModel:
    """Load and compile. `loss`: --loss's SPEC, or (Python API) a Keras loss object or function;
    `custom_objects`: objects given in memory, besides those of `custom_objects_file`. Raises
    ModelFileError/UsageError with one-line messages."""
    info = read_model_file_info(Path(path))
    custom_objects = {**import_custom_objects(custom_objects_file), **(custom_objects or {})}
    loss_arg = (loss_override(loss, custom_objects) if isinstance(loss, str) else loss) if loss is not None else None
    if loss_arg is None and info.compile_config_problem:
        raise ModelFileError(info.path, info.compile_config_problem,
                             "pass the loss you train with, e.g. --loss mse, to use the model anyway")
    model = _keras_load(info, custom_objects, unsafe, custom_objects_file)
    loaded = compile_loaded(model, info, custom_objects, loss_arg, custom_objects_file)
    loaded.unsafe = unsafe
    return loaded


def reload_for_fit(loaded: LoadedModel, unsafe: bool) -> Any:
    """A second, independent copy of the model (same file, same compile, same optimizer state) for
    the fit probe, so the model used for every other figure never changes."""
    model = _keras_load(loaded.info, loaded.custom_objects, unsafe, loaded.custom_objects_file)
    return compile_loaded(model, loaded.info, loaded.custom_objects, loaded.loss_arg,
                          loaded.custom_objects_file).model
