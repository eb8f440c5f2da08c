"""Checks that need no TensorFlow, run before it is imported (which takes seconds): the input paths,
--custom-objects, --loss, --class-weight and KERAS_BACKEND. Each failure is one LosscheckError line."""

from __future__ import annotations

import difflib
import importlib.util
import json
import math
import os
import stat
from pathlib import Path

from losscheck.core import taxonomy
from losscheck.core.errors import DataFileError, ModelFileError, UsageError
from losscheck.loading.files import check_python_file, check_readable

#: every loss name Keras 3's keras.losses.get accepts (keras.src.losses.ALL_OBJECTS_DICT), the
#: tf.keras 2 names losscheck maps to them, and "crossentropy"/"ce" (compile picks the kind);
#: tests/test_cli_usage.py checks this list against the installed Keras
KERAS_LOSS_NAMES = frozenset({
    "BCE", "BinaryCrossentropy", "BinaryFocalCrossentropy", "CTC", "CategoricalCrossentropy",
    "CategoricalFocalCrossentropy", "CategoricalHinge", "Circle", "CosineSimilarity", "Dice", "Hinge", "Huber",
    "KLD", "KLDivergence", "LogCosh", "Loss", "LossFunctionWrapper", "MAE", "MAPE", "MSE", "MSLE",
    "MeanAbsoluteError", "MeanAbsolutePercentageError", "MeanSquaredError", "MeanSquaredLogarithmicError",
    "Poisson", "SparseCategoricalCrossentropy", "SquaredHinge", "Tversky", "bce", "binary_crossentropy",
    "binary_focal_crossentropy", "categorical_crossentropy", "categorical_focal_crossentropy", "categorical_hinge",
    "circle", "cosine_similarity", "ctc", "dice", "hinge", "huber", "kl_divergence", "kld", "log_cosh", "mae",
    "mape", "mean_absolute_error", "mean_absolute_percentage_error", "mean_squared_error",
    "mean_squared_logarithmic_error", "mse", "msle", "poisson", "sparse_categorical_crossentropy",
    "squared_hinge", "tversky",
})
KERAS2_LOSS_ALIASES = frozenset(taxonomy.KERAS2_ALIASES)
AUTO_CROSSENTROPY = frozenset(taxonomy.AUTO_CROSSENTROPY)
KERAS_BACKENDS = ("tensorflow", "jax", "torch", "numpy", "openvino")


#: the package each backend needs, and the losscheck extra that installs it
BACKEND_PACKAGES = {"tensorflow": "tensorflow", "jax": "jax", "torch": "torch", "numpy": "numpy",
                    "openvino": "openvino"}
BACKEND_EXTRAS = {"jax": "losscheck[jax]", "torch": "losscheck[torch]"}
TRAINING_BACKENDS = ("tensorflow", "jax", "torch")
INFERENCE_ONLY = frozenset({"numpy", "openvino"})


def check_backend(option: str | None = None) -> str | None:
    """The Keras backend to run on: `--backend NAME` when given (it sets KERAS_BACKEND, which Keras
    reads when it is imported), else KERAS_BACKEND, else tensorflow. An unknown name, a backend whose
    package is not installed, or (in-process callers) a Keras already imported on another backend is
    one UsageError line. Returns the backend's name (None: Keras's own default, keras.json or tensorflow)."""
    import sys

    where = "--backend" if option is not None else "KERAS_BACKEND"
    name = option if option is not None else os.environ.get("KERAS_BACKEND")
    if name is None:  # Keras's own choice (keras.json, else tensorflow)
        return None
    if name not in KERAS_BACKENDS:
        raise UsageError(f"{where}={name!r} is not a Keras backend ({', '.join(KERAS_BACKENDS)}); "
                         "give one of these, or unset KERAS_BACKEND for tensorflow")
    if importlib.util.find_spec(BACKEND_PACKAGES[name]) is None:
        extra = BACKEND_EXTRAS.get(name)
        how = f'pip install "{extra}"' if extra else f"pip install {BACKEND_PACKAGES[name]}"
        raise UsageError(f"{where}={name}: that backend is not installed; {how}, or unset KERAS_BACKEND "
                         "or set it to tensorflow")
    if name in INFERENCE_ONLY:
        raise UsageError(f"{where}={name}: Keras's {name} backend cannot train a model, so fit cannot be "
                         f"measured on it; use one of {', '.join(TRAINING_BACKENDS)}")
    keras_mod = sys.modules.get("keras")
    if keras_mod is not None and hasattr(keras_mod, "backend"):
        current = keras_mod.backend.backend()
        if current != name:
            raise UsageError(f"{where}={name}: Keras is already imported in this process on {current}; "
                             f"set KERAS_BACKEND={name} before Keras is imported (e.g. in a new process)")
    if option is not None:
        os.environ["KERAS_BACKEND"] = name
    return name


def check_model(path: Path) -> tuple[list[str], list[str]] | None:
    """The model file exists, is a Keras model file (not data, not weights only) and its archive is
    honest: everything that needs no Keras, before TensorFlow is imported. Returns the model's (input
    names, output names) when its saved configuration tells them (see files.io_names), else None."""
    import zipfile

    from losscheck.loading.files import io_names, is_hdf5, read_model_file_info

    check_readable(Path(path), "model file", ModelFileError)
    if zipfile.is_zipfile(path) or is_hdf5(Path(path)):  # a damaged file is named when it is loaded
        return io_names(read_model_file_info(Path(path)).model_config)
    return None


def check_data(data: Path, parse: str | None = None, names: tuple[list[str], list[str]] | None = None,
               what: str = "data file") -> Path | None:
    """DATA: a data file, a FILE.py:FUNC data function, or (with --parse FILE.py:FUNC) a folder or file
    of TFRecords. `names`: the model's (input names, output names), when known: the data file's keys,
    dtypes and sample counts are checked against them too. `what`: the file's name in the messages.
    Returns the file it names (None for a TFRecord folder)."""
    from losscheck.loading.sources import is_function_spec

    if parse is not None:
        if is_function_spec(parse):
            check_python_file(loss_file(parse) or Path(parse), "--parse")
        if not os.path.exists(data):
            raise DataFileError(data, "TFRecord file or folder not found", "check the path")
        return None if os.path.isdir(data) else Path(data)
    if is_function_spec(str(data)) and not os.path.exists(data):
        file = loss_file(str(data))
        if file is not None:
            check_python_file(file, "DATA")
            return file
    check_readable(Path(data), what, DataFileError)
    from losscheck.loading.data_precheck import precheck_data_file

    precheck_data_file(Path(data), names)
    return Path(data)


def loss_file(spec: str | None) -> Path | None:
    """The FILE of a FILE.py:NAME (--loss, --parse, DATA), else None."""
    if spec and ":" in spec and spec.rsplit(":", 1)[0].endswith(".py"):
        return Path(spec.rsplit(":", 1)[0])
    return None


def check_loss(spec: str | None, custom_objects: Path | None) -> None:
    """--loss: FILE.py:NAME names a readable file; a plain name is one Keras knows (or, with
    --custom-objects, may be one of the user's names, which only importing their file can tell)."""
    if not spec:
        return
    file = loss_file(spec)
    if file is not None:
        check_python_file(file, "--loss")
        if not spec.rsplit(":", 1)[1].isidentifier():
            raise UsageError(f"--loss {spec!r}: {spec.rsplit(':', 1)[1]!r} is not a Python name; "
                             "use FILE.py:NAME with NAME the loss function or class in FILE.py")
        return
    name = spec.split(">")[-1]
    known = KERAS_LOSS_NAMES | KERAS2_LOSS_ALIASES
    if name in known or spec.lower() in AUTO_CROSSENTROPY or custom_objects is not None:
        return
    if spec.endswith(".py") or ":" in spec:
        raise UsageError(f"--loss {spec!r}: use FILE.py:NAME for a loss defined in your own file")
    lower = sorted(n for n in known if n == n.lower())
    close = difflib.get_close_matches(spec.lower(), lower, n=1, cutoff=0.8)
    hint = f"did you mean {close[0]}? " if close else ""
    raise UsageError(f"--loss: {spec!r} is not a Keras loss name; {hint}give one such as mse, mae, "
                     "binary_crossentropy, categorical_crossentropy, or FILE.py:NAME")


def class_weight_file(value: str | None) -> Path | None:
    """The file a --class-weight value names, when it is not inline JSON."""
    if not value or value.lstrip().startswith("{"):
        return None
    if os.path.lexists(value):
        return Path(value)
    try:
        json.loads(value)
        return None  # JSON, just not an object: reported by parse_class_weight
    except ValueError:
        return Path(value)


def parse_class_weight(value: str | None) -> dict[int, float] | None:
    """--class-weight: inline JSON or a file holding it; an object of class index -> finite weight."""
    if not value:
        return None
    example = "e.g. '{\"0\": 1, \"1\": 9}' or a file holding it"
    text = value
    file = class_weight_file(value)
    if file is not None:
        try:
            mode = os.stat(file).st_mode
        except FileNotFoundError:
            raise UsageError(f"--class-weight: {value!r} is neither JSON nor an existing file; pass a JSON object "
                             f"of class -> weight, {example}") from None
        except OSError as exc:
            raise UsageError(f"--class-weight: {file} cannot be accessed ({exc.strerror or exc})") from exc
        if not stat.S_ISREG(mode):
            raise UsageError(f"--class-weight: {file} is not a regular file; pass a JSON file, {example}")
        try:
            with open(file, "rb") as fh:
                raw = fh.read((1 << 20) + 1)
        except OSError as exc:
            raise UsageError(f"--class-weight: {file} cannot be read ({exc.strerror or exc}); "
                             "fix its permissions") from exc
        if len(raw) > 1 << 20:
            raise UsageError(f"--class-weight: {file} is over 1 MB, not a class -> weight JSON object")
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise UsageError(f"--class-weight: {file} is not UTF-8 text (byte {exc.start}); save it as a UTF-8 "
                             f"JSON file, {example}") from exc
    try:
        raw_obj = json.loads(text)
        if not isinstance(raw_obj, dict) or not raw_obj:
            raise ValueError("not a non-empty JSON object")
        weights: dict[int, float] = {}
        for key, weight in raw_obj.items():
            if isinstance(weight, bool) or not isinstance(weight, (int, float)):
                raise ValueError(f"class {key}: weight {weight!r} is not a number")
            weights[int(key)] = float(weight)
    except (ValueError, TypeError, RecursionError) as exc:
        where = f"{file}" if file is not None else repr(value)
        raise UsageError(f"--class-weight: {where} is not a JSON object of class -> weight ({exc}); "
                         f"{example}") from exc
    bad = [k for k, w in weights.items() if not math.isfinite(w)]
    if bad:
        raise UsageError(f"--class-weight: class {bad[0]} has weight {weights[bad[0]]}; every weight must be a "
                         "finite number")
    negative = [k for k in weights if k < 0]
    if negative:
        raise UsageError(f"--class-weight: class {negative[0]} is negative; classes are indices 0, 1, ...")
    return weights


PARITY_SETTINGS = ("backends", "jit", "float32")


def parse_parity(value: str | list[str] | tuple[str, ...] | frozenset[str] | None) -> frozenset[str]:
    """--parity: a comma-separated subset of PARITY_SETTINGS (the API also takes a list of them)."""
    if not value:
        return frozenset()
    parts = value.split(",") if isinstance(value, str) else [str(v) for v in value]
    settings = frozenset(s.strip() for s in parts if s.strip())
    unknown = sorted(settings - set(PARITY_SETTINGS))
    if unknown or not settings:
        raise UsageError(f"--parity: unknown setting(s) {', '.join(unknown) or repr(value)}; give a comma-separated "
                         f"list of {', '.join(PARITY_SETTINGS)}")
    return settings


def check_validation(val: object, split: object, val_name: str = "--val",
                     split_name: str = "--validation-split") -> float | None:
    """Validation data and a validation split exclude each other (fit ignores validation_split when
    validation_data is given); the split is a number strictly between 0 and 1, as fit takes it.
    `val_name` / `split_name`: the option names the message uses. Returns the split as a float."""
    if val is not None and split is not None:
        raise UsageError(f"{val_name} and {split_name} cannot be combined (fit ignores validation_split when "
                         "validation_data is given); drop one")
    if split is None:
        return None
    name = split_name.rstrip("=")
    if isinstance(split, bool) or not isinstance(split, (int, float)):
        raise UsageError(f"{name} must be a float between 0 and 1, not {split!r}")
    fraction = float(split)
    if not 0.0 < fraction < 1.0:
        raise UsageError(f"{name}={fraction}: must be between 0 and 1 (exclusive), as in fit()")
    return fraction
