"""Read a model file's metadata without Keras: format, saving version, compile configuration.

.keras: a zip with metadata.json (keras_version), config.json (compile_config) and model.weights.h5.
.h5:    root attributes keras_version, model_config and training_config (JSON strings).
Files are only ever opened read-only.
"""

from __future__ import annotations

import json
import os
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from losscheck.errors import ModelFileError

H5_SIGNATURE = b"\x89HDF\r\n\x1a\n"


@dataclass
class ModelFileInfo:
    path: Path
    format: str  # "keras" | "h5"
    keras_version: str | None
    compile_config: dict[str, Any] | None  # {"loss", "loss_weights", "optimizer", ...} in the file's own dialect
    model_config: dict[str, Any] | None

    @property
    def legacy(self) -> bool:
        """Saved by Keras 2 (tf.keras)."""
        return bool(self.keras_version) and str(self.keras_version).split(".")[0] == "2"

    @property
    def saved_by(self) -> str:
        if not self.keras_version:
            return "unknown"
        return ("tf.keras " if self.legacy else "keras ") + str(self.keras_version)


def check_readable(path: Path, what: str, error: type) -> None:
    if not path.exists():
        raise error(path, f"{what} not found", "check the path")
    if path.is_dir():
        if (path / "saved_model.pb").exists():
            raise error(path, "is a TensorFlow SavedModel directory, not a Keras model file",
                        "re-save the model with model.save('model.keras') or load it as keras.layers.TFSMLayer")
        raise error(path, f"is a directory, not a {what}", f"pass the {what} itself")
    if not os.access(path, os.R_OK):
        raise error(path, "is not readable (permission denied)", "fix the file permissions")
    if path.stat().st_size == 0:
        raise error(path, f"is empty (0 bytes), not a {what}", "pass a complete file")


def _json_attr(value: Any) -> Any:
    if value is None:
        return None
    if isinstance(value, bytes):
        value = value.decode("utf-8")
    try:
        return json.loads(value)
    except (TypeError, ValueError):
        return None


def read_model_file_info(path: Path) -> ModelFileInfo:
    """Identify the file by content and extension; refuse what Keras cannot load with a clear reason."""
    check_readable(path, "model file", ModelFileError)
    with open(path, "rb") as fh:
        head = fh.read(8)
    suffix = path.suffix.lower()
    if head.startswith(b"PK"):
        return _read_keras_zip(path)
    if head == H5_SIGNATURE:
        return _read_h5(path)
    if suffix == ".keras":
        raise ModelFileError(path, "is not a valid .keras archive (not a zip file: truncated or corrupted)",
                             "re-save the model with model.save('model.keras')")
    if suffix in (".h5", ".hdf5"):
        raise ModelFileError(path, "is not a valid HDF5 file (bad signature: truncated or corrupted)",
                             "re-save the model with model.save('model.h5')")
    if suffix == ".pb":
        raise ModelFileError(path, "is a TensorFlow SavedModel file, not a Keras model file",
                             "re-save the model with model.save('model.keras')")
    raise ModelFileError(path, f"unsupported model file type {suffix or '(no extension)'!r}",
                         "pass a Keras .keras or .h5 file")


def _read_keras_zip(path: Path) -> ModelFileInfo:
    try:
        with zipfile.ZipFile(path, "r") as zf:
            names = set(zf.namelist())
            if "config.json" not in names:
                raise ModelFileError(path, "the .keras archive has no config.json (not a Keras 3 model archive)",
                                     "re-save the model with model.save('model.keras')")
            config = json.loads(zf.read("config.json"))
            meta = json.loads(zf.read("metadata.json")) if "metadata.json" in names else {}
            # Read the weights member fully: a truncated archive fails here, not later inside Keras.
            if "model.weights.h5" in names:
                zf.read("model.weights.h5")
    except ModelFileError:
        raise
    except (zipfile.BadZipFile, EOFError, OSError, ValueError, KeyError, zipfile.LargeZipFile) as exc:
        raise ModelFileError(path, f"the .keras archive is damaged or truncated ({type(exc).__name__}: {exc})",
                             "re-save the model with model.save('model.keras')") from exc
    if not isinstance(config, dict):
        raise ModelFileError(path, "config.json in the .keras archive is not a model configuration",
                             "re-save the model with model.save('model.keras')")
    version = meta.get("keras_version") if isinstance(meta, dict) else None
    compile_config = config.get("compile_config")
    return ModelFileInfo(path, "keras", version, compile_config if isinstance(compile_config, dict) else None, config)


def _read_h5(path: Path) -> ModelFileInfo:
    import h5py

    try:
        with h5py.File(path, "r") as f:
            attrs = dict(f.attrs)
            has_weights = "model_weights" in f or "layer_names" in attrs
    except OSError as exc:
        raise ModelFileError(path, f"cannot be read as HDF5 ({exc})",
                             "the file is truncated or corrupted; re-save the model") from exc
    model_config = _json_attr(attrs.get("model_config"))
    if model_config is None:
        if has_weights:
            raise ModelFileError(path, "holds only weights (saved with save_weights), no model architecture",
                                 "save the whole model with model.save('model.keras')")
        raise ModelFileError(path, "is an HDF5 file without a Keras model in it",
                             "pass a model saved with model.save()")
    version = attrs.get("keras_version")
    if isinstance(version, bytes):
        version = version.decode()
    training = _json_attr(attrs.get("training_config"))
    return ModelFileInfo(path, "h5", version, training if isinstance(training, dict) else None, model_config)
