"""Why a model file does not load, in one line with a hint: a custom object the file uses but no
--custom-objects file defines, a Lambda layer without --unsafe, a file saved by a newer Keras, a damaged
file, a tf.keras model Keras 3 cannot rebuild."""

from __future__ import annotations

import re
from pathlib import Path

from losscheck._tf import keras
from losscheck.core.errors import LosscheckError, ModelFileError
from losscheck.loading.files import ModelFileInfo

LAMBDA_HINT = ("pass --unsafe only if you trust the file: it contains a Lambda layer, and loading one runs the Python "
               "bytecode stored in the file, which can do anything your account can")


def _version(text: object) -> tuple[int, ...]:
    m = re.match(r"\s*(\d+)\.(\d+)(?:\.(\d+))?", str(text or ""))
    return tuple(int(g or 0) for g in m.groups()) if m else ()


def newer_keras_error(info: ModelFileInfo, exc: Exception) -> ModelFileError | None:
    """A file saved by a newer Keras than the installed one that fails to load: say so, and which
    Keras to install (the file's own version), instead of calling the file damaged."""
    saved, installed = _version(info.keras_version), _version(keras.__version__)
    if not saved or not installed or saved <= installed or isinstance(exc, LosscheckError):
        return None
    first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
    return ModelFileError(info.path, f"it was saved by Keras {info.keras_version}, newer than the installed Keras "
                          f"{keras.__version__}, which cannot read it ({type(exc).__name__}: {first})",
                          f"install Keras {info.keras_version} or newer (pip install 'keras>={info.keras_version}') "
                          "or re-save the model with the installed version")


_MISSING_PATTERNS = (
    r"Could not locate (?:class|function) '([^']+)'",
    r"Unknown (?:layer|object|loss|metric|activation|regularizer|initializer|constraint)[^'\"]*['\"]([^'\"]+)['\"]",
    r"Could not locate (?:class|function|object) ([A-Za-z_][\w.>]*)",
    r"Unknown (?:layer|object|loss)[:\s]+([A-Za-z_][\w.>]*)",
)


def missing_custom_object(text: str) -> str | None:
    """The name of the custom object a Keras error says it could not find, if it says one."""
    for pattern in _MISSING_PATTERNS:
        m = re.search(pattern, text)
        if m:
            return m.group(1)
    return None


# tf.keras layers Keras 3 no longer has: a missing object of that name is not the user's custom object
REMOVED_IN_KERAS3 = {"AbstractRNNCell", "DenseFeatures", "LocallyConnected1D", "LocallyConnected2D", "RandomHeight",
                     "RandomWidth", "ThresholdedReLU", "CuDNNLSTM", "CuDNNGRU"}


def missing_object_error(path: Path, what: str, custom_objects_file: Path | None, where: str = "") -> ModelFileError:
    name = what.split(">")[-1]  # tf.keras registers objects as "Package>Name"; the file defines Name
    if name in REMOVED_IN_KERAS3:
        return ModelFileError(path, f"{where}uses the tf.keras layer {name!r}, which Keras 3 no longer has",
                              "replace it in tf.keras and re-save, or pass a Keras 3 implementation of it with "
                              "--custom-objects FILE.py")
    if custom_objects_file is not None:
        hint = (f"{custom_objects_file} does not define {name!r}: add it there (a function, a class, or an entry "
                "of its custom_objects dict)")
    else:
        hint = "pass the Python file that defines it with --custom-objects FILE.py"
    return ModelFileError(path, f"{where}uses the custom object {what!r}, which is not available", hint)


def load_error(path: Path, exc: Exception, custom_objects_file: Path | None = None,
                legacy: bool = False) -> ModelFileError:
    if isinstance(exc, LosscheckError):
        return exc  # type: ignore[return-value]
    text = str(exc)
    low = text.lower()
    if "lambda" in low and ("safe_mode" in low or "unsafe" in low or "deserializ" in low):
        return ModelFileError(path, "refused to load a Lambda layer without --unsafe", LAMBDA_HINT)
    what = missing_custom_object(text)
    if what is not None:
        return missing_object_error(path, what, custom_objects_file)
    if "no model config found" in low:
        return ModelFileError(path, "holds only weights (saved with save_weights), no model architecture",
                              "save the whole model with model.save('model.keras')")
    first = text.strip().splitlines()[0] if text.strip() else type(exc).__name__
    if isinstance(exc, KeyError) or "revive" in low or "inbound_nodes" in low:
        return ModelFileError(path, f"its model configuration is incomplete or damaged ({type(exc).__name__}: "
                              f"{first[:200]})", "re-save the model with model.save('model.keras')")
    if isinstance(exc, OSError) or "unable to" in low or "synchronously" in low or "truncated" in low:
        return ModelFileError(path, f"the model's weights cannot be read: the file is damaged ({type(exc).__name__}: "
                              f"{first[:200]})", "re-save the model with model.save('model.keras')")
    if legacy:  # a well-formed tf.keras file that Keras 3 cannot rebuild: not a saving mistake
        return ModelFileError(path, f"Keras 3 cannot rebuild this tf.keras 2.x model ({type(exc).__name__}: "
                              f"{first[:300]})", "rebuild the architecture in Keras 3 code and load the file's "
                              "weights into it with model.load_weights(FILE)")
    return ModelFileError(path, f"Keras could not load the model ({type(exc).__name__}: {first[:300]})",
                          "check that it was saved with model.save() by Keras 3 or tf.keras 2.x")
