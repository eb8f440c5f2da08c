"""Read a model file's metadata without Keras: format, saving version, compile configuration.

.keras: a zip with metadata.json (keras_version), config.json (compile_config) and model.weights.h5.
.h5:    root attributes keras_version, model_config and training_config (JSON strings).
Files are only ever opened read-only.
"""

from __future__ import annotations

import errno
import json
import os
import re
import stat
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from losscheck.core.errors import ModelFileError, UsageError, first_line
from losscheck.loading.archive import (
    ArchiveProblem,
    check_archive,
    npy_members_size,
    open_member_h5,
    read_member,
    verify_member,
)
from losscheck.loading.h5_guard import outside_reference

#: a weights dataset declaring more than this and over 100x what it stores is a bomb (Keras reads
#: weights whole into memory)
WEIGHTS_BOMB_FLOOR = 256 << 20
#: config.json / metadata.json of a .keras archive: a model's configuration is a few MB at most
CONFIG_CAP = 64 << 20

H5_SIGNATURE = b"\x89HDF\r\n\x1a\n"


@dataclass
class ModelFileInfo:
    path: Path
    format: str  # "keras" | "h5"
    keras_version: str | None
    compile_config: dict[str, Any] | None  # {"loss", "loss_weights", "optimizer", ...} in the file's own dialect
    model_config: dict[str, Any] | None
    compile_config_problem: str | None = None  # the file has a compile config, but it cannot be parsed
    load_notes: list[str] = field(default_factory=list)  # what loading had to adapt (for the report's notes)

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
    """Refuse, with a precise reason, what is not a readable, non-empty regular file."""
    try:
        exists = path.exists()
    except OSError as exc:  # e.g. a path component is not a directory, or a name too long
        raise error(path, f"{what} cannot be accessed ({exc.strerror or exc})", "check the path") from exc
    if not exists:
        parent = path.parent
        while parent != parent.parent and not parent.exists():
            parent = parent.parent
        if parent.exists() and not parent.is_dir():
            raise error(path, f"{what} cannot be accessed: {parent} is a file, not a directory", "check the path")
        if path.is_symlink():
            try:
                os.stat(path)
            except OSError as exc:
                if exc.errno == errno.ELOOP:
                    raise error(path, f"{what} is a symbolic link loop (it leads back to itself)",
                                "point the link at an existing file") from exc
            raise error(path, f"{what} is a broken symbolic link", "point it at an existing file")
        raise error(path, f"{what} not found", "check the path")
    if path.is_dir():
        if (path / "saved_model.pb").exists() or (path / "saved_model.pbtxt").exists():
            raise error(path, "is a TensorFlow SavedModel directory, not a Keras model file",
                        "re-save the model with model.save('model.keras') (or .h5); losscheck cannot read "
                        "SavedModels (Keras 3 only wraps them as an inference-only keras.layers.TFSMLayer)")
        if (path / "config.json").exists() and what == "model file":
            raise error(path, "is a directory holding an unpacked Keras archive, not a model file",
                        "pass the .keras file itself (zip the directory's contents back into one)")
        raise error(path, f"is a directory, not a {what}", f"pass the {what} itself")
    if not path.is_file():
        raise error(path, f"is not a regular file (a device, pipe or socket), not a {what}", f"pass the {what} itself")
    try:
        size = path.stat().st_size
        with open(path, "rb") as fh:
            fh.read(1)
    except PermissionError as exc:
        raise error(path, f"{what} is not readable (permission denied)", "fix the file permissions") from exc
    except OSError as exc:
        raise error(path, f"{what} cannot be read ({exc.strerror or exc})", "check the file") from exc
    if size == 0:
        raise error(path, f"is empty (0 bytes), not a {what}", "pass a complete file")


def read_head(path: Path, what: str, error: type, n: int = 8) -> bytes:
    try:
        with open(path, "rb") as fh:
            return fh.read(n)
    except OSError as exc:
        raise error(path, f"{what} cannot be read ({exc.strerror or exc})", "check the file") from exc


def is_hdf5(path: Path) -> bool:
    """HDF5 with a user block (the signature at byte 512, 1024, ...), which h5py opens too."""
    try:
        import h5py

        return bool(h5py.is_hdf5(str(path)))
    except Exception:  # noqa: BLE001 - not an HDF5 file, whatever h5py raises
        return False


def check_python_file(path: Path, option: str) -> None:
    """A user Python file: it must be a readable regular .py file (a FIFO would block the import)."""
    path = Path(path)
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        what = "is a broken symbolic link" if path.is_symlink() else "not found"
        raise UsageError(f"{path}: {option} file {what}; pass the .py file that defines your losses/layers") from None
    except OSError as exc:
        raise UsageError(f"{path}: {option} file cannot be accessed ({exc.strerror or exc}); check the path") from exc
    if stat.S_ISDIR(mode):
        raise UsageError(f"{path}: {option} file is a directory; pass the .py file that defines your losses/layers")
    if not stat.S_ISREG(mode):
        raise UsageError(f"{path}: {option} file is not a regular file (a pipe, device or socket); "
                         "pass the .py file itself")
    if path.suffix != ".py":
        raise UsageError(f"{path}: {option} needs a Python source file ending in .py")
    if not os.access(path, os.R_OK):
        raise UsageError(f"{path}: {option} file is not readable (permission denied); fix the file permissions")


def _json_attr(value: Any) -> Any:
    if value is None:
        return None
    try:
        if isinstance(value, bytes):
            value = value.decode("utf-8")
        return json.loads(value)
    except (TypeError, ValueError, RecursionError):
        return None


def read_model_file_info(path: Path) -> ModelFileInfo:
    """Identify the file by content and extension; refuse what Keras cannot load with a clear reason."""
    check_readable(path, "model file", ModelFileError)
    head = read_head(path, "model file", ModelFileError)
    suffix = path.suffix.lower()
    if head.startswith(b"PK"):
        return _read_keras_zip(path)
    if head == H5_SIGNATURE or is_hdf5(path):
        return _read_h5(path)
    if suffix == ".keras":
        raise ModelFileError(path, "is not a valid .keras archive (not a zip file: truncated or corrupted)",
                             "re-save the model with model.save('model.keras')")
    if suffix in (".h5", ".hdf5"):
        raise ModelFileError(path, "is not a valid HDF5 file (bad signature: truncated or corrupted)",
                             "re-save the model with model.save('model.h5')")
    if suffix in (".pb", ".pbtxt"):
        raise ModelFileError(path, "is a TensorFlow SavedModel file, not a Keras model file",
                             "re-save the model with model.save('model.keras') (or .h5)")
    if head.startswith(b"\x93NUMPY"):
        raise ModelFileError(path, "is a numpy .npy array, not a model file", "pass the model first, then the data")
    if suffix in (".pkl", ".pickle", ".joblib"):
        raise ModelFileError(path, "is a pickle, which losscheck never loads",
                             "save the model with model.save('model.keras')")
    raise ModelFileError(path, f"unsupported model file type {suffix or '(no extension)'!r}",
                         "pass a Keras .keras or .h5 file")


RESAVE_KERAS = "re-save the model with model.save('model.keras')"
RESAVE_H5 = "re-save the model with model.save('model.h5') or model.save('model.keras')"


def _read_keras_zip(path: Path) -> ModelFileInfo:
    outside = None
    try:
        with zipfile.ZipFile(path, "r") as zf:
            names = set(zf.namelist())
            if names and all(n.endswith(".npy") for n in names):
                raise ModelFileError(path, "is an .npz data file, not a model file",
                                     "pass the model first, then the data: losscheck compare MODEL DATA")
            check_archive(zf, path.stat().st_size)
            if "config.json" not in names:
                raise ModelFileError(path, "the .keras archive has no config.json (not a Keras 3 model archive, "
                                     f"members: {', '.join(sorted(names)[:5]) or 'none'})", RESAVE_KERAS)
            config = json.loads(read_member(zf, "config.json", CONFIG_CAP))
            meta = json.loads(read_member(zf, "metadata.json", CONFIG_CAP)) if "metadata.json" in names else {}
            if "model.weights.h5" not in names and "model.weights.npz" not in names:
                raise ModelFileError(path, "the .keras archive has no model.weights.h5 (incomplete archive)",
                                     RESAVE_KERAS)
            # Stream the weights member through its CRC check: a damaged archive fails here, not later
            # inside Keras; memory stays at one chunk.
            head = verify_member(zf, "model.weights.h5") if "model.weights.h5" in names else b""
            if not head and "model.weights.npz" in names:  # weights saved with weights_format="npz"
                with zf.open("model.weights.npz") as member, zipfile.ZipFile(member) as inner:
                    check_archive(inner, zf.getinfo("model.weights.npz").file_size)
                    npy_members_size(inner)
        if head and not head.startswith(H5_SIGNATURE):
            raise ModelFileError(path, "the .keras archive's model.weights.h5 is not an HDF5 file (corrupted)",
                                 RESAVE_KERAS)
        if head:
            with open_member_h5(path, "model.weights.h5") as weights:
                outside = outside_reference(weights, bomb_floor=WEIGHTS_BOMB_FLOOR)
    except ModelFileError:
        raise
    except ArchiveProblem as exc:
        raise ModelFileError(path, f"the .keras archive is refused: {exc}", RESAVE_KERAS) from exc
    except (zipfile.BadZipFile, EOFError, zlib.error, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelFileError(path, f"the .keras archive is damaged or truncated ({type(exc).__name__}: "
                             f"{first_line(exc)})", RESAVE_KERAS) from exc
    except Exception as exc:  # anything else zipfile/json/h5py raise on a corrupted archive
        raise ModelFileError(path, f"the .keras archive cannot be read ({type(exc).__name__}: {first_line(exc)})",
                             RESAVE_KERAS) from exc
    if outside is not None:
        raise ModelFileError(path, f"the .keras archive's model.weights.h5: {outside}", RESAVE_KERAS)
    if not isinstance(config, dict) or "class_name" not in config:
        raise ModelFileError(path, "config.json in the .keras archive is not a model configuration", RESAVE_KERAS)
    version = meta.get("keras_version") if isinstance(meta, dict) else None
    if isinstance(version, str) and version.split(".")[0] == "2":
        raise ModelFileError(path, f"is a .keras archive written by tf.keras {version}, which Keras 3 cannot load "
                             "(its config names classes Keras 3 does not have)",
                             "re-save it from tf.keras as .h5 (model.save('model.h5')), which losscheck reads")
    compile_config = config.get("compile_config")
    return ModelFileInfo(path, "keras", version, compile_config if isinstance(compile_config, dict) else None, config)


def _h5_open_problem(exc: BaseException) -> str:
    text = str(exc)
    m = re.search(r"truncated file: eof = (\d+).*stored_eof = (\d+)", text)
    if m:
        on_disk, stored = int(m.group(1)), int(m.group(2))
        if stored > 64 * on_disk:
            return "is corrupted (its HDF5 header records an impossible file size)"
        return f"is truncated ({on_disk} of {stored} bytes)"
    if "file signature not found" in text:
        return "is not a valid HDF5 file (bad signature: truncated or corrupted)"
    return f"is a damaged HDF5 file ({first_line(exc)})"


def _read_h5(path: Path) -> ModelFileInfo:
    import h5py

    try:
        with h5py.File(path, "r") as f:
            attrs = {k: f.attrs[k] for k in ("model_config", "training_config", "keras_version", "layer_names")
                     if k in f.attrs}
            keys = set(f.keys())
            outside = outside_reference(f, bomb_floor=WEIGHTS_BOMB_FLOOR)
    except Exception as exc:  # OSError, or KeyError/RuntimeError from a damaged file
        raise ModelFileError(path, _h5_open_problem(exc), RESAVE_H5) from exc
    if outside is not None:
        raise ModelFileError(path, outside, RESAVE_H5)
    if "model_config" not in attrs:
        if "layer_names" in attrs or {"layers", "vars"} & keys or "model_weights" in keys:
            raise ModelFileError(path, "holds only weights (saved with save_weights), no model architecture",
                                 "save the whole model with model.save('model.keras'), or load the weights into "
                                 "the model in Python and save that")
        if {"x", "y"} & keys or any(k.startswith(("x_", "y_")) for k in keys):
            raise ModelFileError(path, "is an HDF5 data file, not a model file",
                                 "pass the model first, then the data: losscheck compare MODEL DATA")
        raise ModelFileError(path, "is an HDF5 file without a Keras model in it (no model_config attribute)",
                             "pass a model saved with model.save()")
    model_config = _json_attr(attrs.get("model_config"))
    if not isinstance(model_config, dict):
        raise ModelFileError(path, "its model_config attribute is not valid JSON (corrupted)", RESAVE_H5)
    version = attrs.get("keras_version")
    if isinstance(version, bytes):
        version = version.decode("utf-8", "replace")
    if version is not None and not isinstance(version, str):
        version = str(version)
    info = ModelFileInfo(path, "h5", version, None, model_config)
    if "training_config" in attrs:
        training = _json_attr(attrs.get("training_config"))
        if isinstance(training, dict):
            info.compile_config = training
        else:
            info.compile_config_problem = ("its training_config attribute (the saved compile arguments) "
                                           "is not valid JSON")
    return info


def _triples(structure: Any) -> list[Any] | None:
    """The [layer name, node, tensor] triples of a Functional config's input_layers/output_layers, in
    the order Keras flattens them (a dict by sorted key); None for a structure not of that form."""
    if isinstance(structure, (list, tuple)) and len(structure) == 3 and isinstance(structure[0], str) \
            and all(isinstance(i, int) for i in structure[1:]):
        return [structure]
    if isinstance(structure, dict):
        parts = [_triples(structure[k]) for k in sorted(structure)]
    elif isinstance(structure, (list, tuple)) and structure:
        parts = [_triples(s) for s in structure]
    else:
        return None
    if any(p is None for p in parts):
        return None
    return [t for p in parts for t in p]  # type: ignore[union-attr]


def io_names(model_config: Any) -> tuple[list[str], list[str]] | None:
    """(input names, output names) of a saved Functional or Sequential model as the loaded model gives
    them (input tensors are named after their InputLayer, outputs after the layers producing them),
    read from its configuration without Keras; None when only building the model can tell (a
    subclassed model, a Sequential without an InputLayer, a layer producing several outputs)."""
    if not isinstance(model_config, dict):
        return None
    config = model_config.get("config")
    layers = config.get("layers") if isinstance(config, dict) else None
    if not isinstance(layers, list) or not layers or not all(isinstance(la, dict) for la in layers):
        return None

    def name(layer: dict[str, Any]) -> Any:
        inner = layer.get("config")
        return layer.get("name") or (inner.get("name") if isinstance(inner, dict) else None)

    kind = model_config.get("class_name")
    if kind == "Sequential":
        first, last = layers[0], layers[-1]
        if len(layers) < 2 or first.get("class_name") != "InputLayer" or last.get("class_name") == "InputLayer":
            return None
        names = [name(first)], [name(last)]
    elif (kind in ("Functional", "Model") and isinstance(config, dict) and "input_layers" in config
          and "output_layers" in config):
        ins, outs = _triples(config["input_layers"]), _triples(config["output_layers"])
        if not ins or not outs:
            return None
        kinds = {name(la): la.get("class_name") for la in layers}
        if any(kinds.get(t[0]) != "InputLayer" for t in ins) or any(t[0] not in kinds for t in outs):
            return None
        if len({t[0] for t in outs}) != len(outs):  # one layer giving several outputs
            return None
        names = [t[0] for t in ins], [t[0] for t in outs]
    else:
        return None
    if not all(isinstance(n, str) and n for n in names[0] + names[1]):
        return None
    return names
