"""Load a Keras model file (Keras 3 .keras/.h5, tf.keras 2.x .h5) and compile it from the file's own
compile configuration, recovering what Keras 3 cannot compile on load (legacy compile configs).

Always `load_model(compile=False)`, then: loss/loss_weights/optimizer parsed from the file (or
--loss), `model.compile(...)`, optimizer state restored from the file when the shapes fit.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import importlib.util
import os
import re
import shutil
import sys
import tempfile
import types
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from losscheck import interrupts, usercode
from losscheck._tf import keras
from losscheck.core.errors import LosscheckError, ModelFileError, UsageError, first_line
from losscheck.core.taxonomy import SPARSE_KINDS
from losscheck.loading.archive import open_member_h5
from losscheck.loading.files import ModelFileInfo, read_model_file_info
from losscheck.loading.legacy_h5 import Unfixable, fixable, leftovers, load_patched
from losscheck.loading.losses import resolve_loss
from losscheck.loading.lossspec import describe_loss, loss_spec
from losscheck.loading.steps import LoopFacts, adds_losses, custom_steps
from losscheck.notes import FIT, Note

LAMBDA_HINT = ("pass --unsafe only if you trust the file: it contains a Lambda layer, and loading one runs the Python "
               "bytecode stored in the file, which can do anything your account can")


@dataclass
class LoadedModel:
    """A compiled Keras model and what losscheck knows about how it was compiled."""

    model: Any
    info: ModelFileInfo
    output_names: list[str]
    losses: dict[str, Any]  # output -> keras Loss object (None: no loss on that output)
    loss_weights: dict[str, float]
    compile_source: str  # "file" | "--loss"
    optimizer_restored: bool
    notes: list[str] = field(default_factory=list)
    custom_objects: dict[str, Any] = field(default_factory=dict)
    loss_arg: Any = None  # --loss, when given
    custom_objects_file: Path | None = None
    unsafe: bool = False
    # why the saved optimizer could not be rebuilt (then no fit figure is measured), or None
    optimizer_problem: str | None = None

    @property
    def compiled_loss(self) -> bool:
        """Some output has a compiled loss (else every loss comes from add_loss or the model's own steps)."""
        return any(v is not None for v in self.losses.values())

    @property
    def loop(self) -> LoopFacts:
        """How the model's training loop departs from Keras's default one (read from the model each time)."""
        return LoopFacts.of(self.model, self.compiled_loss)

    @property
    def specs(self):
        return {o: (loss_spec(v) if v is not None else None) for o, v in self.losses.items()}

    def loss_labels(self) -> dict[str, str]:
        return {o: describe_loss(v) for o, v in self.losses.items() if v is not None}


def import_custom_objects(path: Path | None, option: str = "--custom-objects") -> dict[str, Any]:
    """Import FILE.py; use its `custom_objects` dict if it has one, else its public functions and classes.
    Never writes bytecode (__pycache__) beside the user's file."""
    if path is None:
        return {}
    from losscheck.preflight import check_python_file

    path = Path(path)
    check_python_file(path, option)
    usercode.register_file(path)
    name = f"losscheck_custom_{hashlib.sha1(str(path.resolve()).encode()).hexdigest()[:12]}"
    if name in sys.modules:  # already imported in this process (the fit copy, or tests): reuse it
        module = sys.modules[name]
    else:
        spec = importlib.util.spec_from_file_location(name, path)
        if spec is None or spec.loader is None:
            raise UsageError(f"{path}: cannot be imported as Python; pass a .py file")
        module = importlib.util.module_from_spec(spec)
        sys.dont_write_bytecode = True  # never write __pycache__ beside the user's file (or its imports)
        folder = str(path.resolve().parent)
        if folder not in sys.path:
            sys.path.append(folder)  # its sibling modules can be imported; never shadows installed ones
        sys.modules[name] = module
        try:
            spec.loader.exec_module(module)
        except BaseException as exc:  # the user's code (SyntaxError, SystemExit, ...): theirs to see, in one line
            sys.modules.pop(name, None)
            if isinstance(exc, KeyboardInterrupt):
                raise
            if isinstance(exc, (SystemExit, usercode.UserCodeExit)):
                raise usercode.exited(exc) from exc
            text = (str(exc).strip().splitlines() or [""])[0][:200]
            raise UsageError(f"{path}: importing the {option} file failed: {type(exc).__name__}: {text}") from exc
    explicit = getattr(module, "custom_objects", None)
    if explicit is not None:
        if not isinstance(explicit, dict) or not all(isinstance(k, str) for k in explicit):
            raise UsageError(f"{path}: `custom_objects` must be a dict of name -> function or class")
        return dict(explicit)
    # every public function or class the file defines or imports (a loss built by a factory in another
    # module counts too); names it imports from Keras map to the same Keras objects, which is harmless
    return {key: value for key, value in vars(module).items()
            if not key.startswith("_") and callable(value) and not isinstance(value, types.ModuleType)}


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
    raise _load_error(path, error, custom_objects_file, legacy=info.legacy) from error


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
        raise _load_error(info.path, err, custom_objects_file, legacy=info.legacy) from err
    note = ("the tf.keras model config was adapted for Keras 3 in memory, without changing what it computes: "
            f"{'; '.join(dropped)}")
    if note not in info.load_notes:
        info.load_notes.append(note)
    return model


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


def _load_error(path: Path, exc: Exception, custom_objects_file: Path | None = None,
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


def _loss_override(spec: str, custom_objects: dict[str, Any]) -> Any:
    """--loss: a Keras loss name or FILE.py:NAME."""
    if ":" in spec and spec.rsplit(":", 1)[0].endswith(".py"):
        file, name = spec.rsplit(":", 1)
        objs = import_custom_objects(Path(file), "--loss")
        if name not in objs:
            raise UsageError(f"{file}: --loss names {name!r}, which the file does not define; "
                             f"defined: {', '.join(sorted(objs)) or 'nothing public'}")
        custom_objects.update(objs)
        return objs[name]
    return spec


def _outputs(model) -> list[str]:
    names = getattr(model, "output_names", None)
    if names:
        return list(names)
    outs = list(getattr(model, "outputs", None) or [])
    layer_names = []
    for t in outs:  # Sequential: name outputs after the layers that produce them
        history = getattr(t, "_keras_history", None)
        layer_names.append(getattr(getattr(history, "operation", None), "name", None))
    if outs and all(layer_names) and len(set(layer_names)) == len(layer_names):
        return [str(n) for n in layer_names]
    return [f"output_{i}" for i in range(max(len(outs), 1))]


def _per_output(structure: Any, outputs: list[str], what: str, path: Path) -> dict[str, Any]:
    """Map a compile argument (single, list or dict) to {output: value}."""
    if isinstance(structure, dict) and not _is_serialized_object(structure):
        unknown = set(structure) - set(outputs)
        if unknown:
            raise ModelFileError(path, f"{what} names outputs {sorted(unknown)} the model does not have "
                                 f"(outputs: {outputs})", "fix the compile configuration or pass --loss")
        return {o: structure.get(o) for o in outputs}
    if isinstance(structure, (list, tuple)):
        if len(structure) != len(outputs):
            if len(outputs) == 1 and len(structure) == 1:
                return {outputs[0]: structure[0]}
            raise ModelFileError(path, f"{what} has {len(structure)} entries but the model has "
                                 f"{len(outputs)} outputs", "pass --loss")
        return dict(zip(outputs, structure, strict=False))
    return {o: structure for o in outputs}


def _is_serialized_object(d: dict) -> bool:
    return "class_name" in d and "config" in d


#: the optimizer a model is compiled with when the file's cannot be rebuilt: never used for a figure
PLACEHOLDER_OPTIMIZER = "sgd"


def _build_optimizer(config: Any, notes: list[str]) -> tuple[Any, str | None]:
    """(the optimizer, None), or (a placeholder, why the saved one cannot be rebuilt): then the fit
    figures are left out, since they would not be what the user's fit reports."""
    if config is None:
        notes.append(Note("no optimizer in the file: the fit probe uses SGD(learning_rate=0.01)", FIT))
        return keras.optimizers.SGD(0.01), None
    try:
        if isinstance(config, str):
            return keras.optimizers.get(config), None
        cfg = copy.deepcopy(config)
        inner = cfg.get("config", {}) if isinstance(cfg, dict) else {}
        if isinstance(inner, dict):
            for key in ("is_legacy_optimizer", "jit_compile", "decay"):
                inner.pop(key, None)
            if "lr" in inner:  # Keras <= 2.2 spelling
                inner.setdefault("learning_rate", inner.pop("lr"))
            lr = inner.get("learning_rate")
            if isinstance(lr, dict) and "class_name" in lr and "module" not in lr:
                lr.setdefault("module", "keras.optimizers.schedules")
            odd = [k for k, v in inner.items() if k != "name" and not (k == "learning_rate" and isinstance(v, dict))
                   and not (v is None or isinstance(v, (bool, int, float)))]
            if odd:  # a damaged config builds an optimizer that fails only inside fit
                raise ValueError(f"non-numeric {', '.join(odd)}")
        if "module" not in cfg:
            name = str(cfg["class_name"]).split(">")[-1]  # tf.keras writes "Custom>Adam"
            cfg = {"class_name": name, "config": inner}
        optimizer = keras.optimizers.deserialize(cfg)
        if not isinstance(optimizer, keras.optimizers.Optimizer):
            raise ValueError(f"unknown optimizer {str(cfg.get('class_name'))[:60]!r}")
        return optimizer, None
    except Exception as exc:  # noqa: BLE001 - any rebuild failure leaves the fit figures out, with a note
        problem = (f"the saved optimizer could not be rebuilt ({type(exc).__name__}: {first_line(exc, 80)}), so "
                   "fit_epoch is not measured (a fit with another optimizer is not the fit you ran); pass the file "
                   "that defines a custom optimizer with --custom-objects FILE.py")
        notes.append(Note(problem, FIT))
        return keras.optimizers.get(PLACEHOLDER_OPTIMIZER), problem


def _optimizer_values(info: ModelFileInfo) -> list[Any] | None:
    import h5py
    import numpy as np

    try:
        # read_model_file_info walked these files first: no links, external storage or virtual datasets
        if info.format == "keras":
            with zipfile.ZipFile(info.path, "r") as zf:
                if "model.weights.h5" not in zf.namelist():
                    return None
            with open_member_h5(info.path, "model.weights.h5") as f:
                if "optimizer/vars" not in f:
                    return None
                group = f["optimizer/vars"]
                return [np.array(group[str(i)]) for i in range(len(group))]
        with h5py.File(info.path, "r") as f:
            if "optimizer_weights" not in f:
                return None
            group = f["optimizer_weights"]
            names = [n.decode() if isinstance(n, bytes) else n for n in group.attrs.get("weight_names", [])]
            return [np.array(group[n]) for n in names]
    except Exception:  # noqa: BLE001 - no readable optimizer weights: the fit probe starts fresh
        return None


def _restore_optimizer(model, info: ModelFileInfo, notes: list[str]) -> bool:
    values = _optimizer_values(info)
    if not values:
        return False
    opt = model.optimizer
    try:
        opt.build(model.trainable_variables)
        variables = list(opt.variables)
        if len(variables) == len(values) + 1:  # Keras 2 does not store the learning rate as a variable
            variables = [v for v in variables if not v.path.endswith("learning_rate")]
        if len(variables) != len(values) or any(tuple(v.shape) != tuple(a.shape)
                                                 for v, a in zip(variables, values, strict=False)):
            notes.append(Note("the saved optimizer state does not match this Keras's optimizer layout; the fit "
                              "probe starts from a fresh optimizer state", FIT))
            return False
        for v, a in zip(variables, values, strict=False):
            v.assign(a)
        return True
    except Exception as exc:  # noqa: BLE001 - any restore failure is a note, the probe runs on
        notes.append(Note(f"the saved optimizer state could not be restored ({type(exc).__name__})", FIT))
        return False


def load_model(path: Path, *, custom_objects_file: Path | None = None, loss: Any = None,
               unsafe: bool = False, custom_objects: dict[str, Any] | None = None) -> LoadedModel:
    """Load and compile. `loss`: --loss's SPEC, or (Python API) a Keras loss object or function;
    `custom_objects`: objects given in memory, besides those of `custom_objects_file`. Raises
    ModelFileError/UsageError with one-line messages."""
    info = read_model_file_info(Path(path))
    custom_objects = {**import_custom_objects(custom_objects_file), **(custom_objects or {})}
    loss_arg = (_loss_override(loss, custom_objects) if isinstance(loss, str) else loss) if loss is not None else None
    if loss_arg is None and info.compile_config_problem:
        raise ModelFileError(info.path, info.compile_config_problem,
                             "pass the loss you train with, e.g. --loss mse, to use the model anyway")
    model = _keras_load(info, custom_objects, unsafe, custom_objects_file)
    loaded = compile_loaded(model, info, custom_objects, loss_arg, custom_objects_file)
    loaded.unsafe = unsafe
    return loaded


def _resolve_one(info: ModelFileInfo, out: str, raw: Any, custom_objects: dict[str, Any],
                 custom_objects_file: Path | None, notes: list[str], from_option: bool = False) -> Any:
    where = f"the loss of output {out!r} "
    try:
        loss = resolve_loss(raw, custom_objects)
    except LookupError as exc:
        if from_option:
            raise UsageError(f"--loss: {exc.args[0]!r} is not a Keras loss name; give one such as mse, mae, "
                             "binary_crossentropy, categorical_crossentropy, or FILE.py:NAME") from exc
        raise missing_object_error(info.path, str(exc.args[0]), custom_objects_file, where) from exc
    except LosscheckError:
        raise
    except Exception as exc:  # ValueError/TypeError from Keras, or whatever a damaged config produces
        what = missing_custom_object(str(exc))
        if what is not None:
            raise missing_object_error(info.path, what, custom_objects_file, where) from exc
        raise ModelFileError(info.path, f"{where}cannot be rebuilt ({type(exc).__name__}: {first_line(exc, 300)})",
                             "pass --loss to give it explicitly") from exc
    if isinstance(raw, dict) and raw.get("class_name") == "Huber" and "delta" not in (raw.get("config") or {}):
        notes.append(f"output {out!r}: the file's Huber loss has no saved delta (Keras 3 does not save it); "
                     "delta=1.0 is used, as Keras itself does when it loads this file")
    return loss


_SPARSE = SPARSE_KINDS


def _smoke_test(model, outputs: list[str], losses: dict[str, Any], info: ModelFileInfo) -> None:
    """Call each built-in loss once on zeros shaped like its output: a damaged loss config (an axis the
    output does not have, ...) is refused here by name instead of failing in the middle of a run.
    Custom losses are not called: they may need real data."""
    import numpy as np

    tensors = list(getattr(model, "outputs", None) or [])
    if len(tensors) != len(outputs):
        return
    for out, t in zip(outputs, tensors, strict=False):
        loss = losses.get(out)
        fn = getattr(loss, "fn", None)
        if loss is None or fn is None or not str(getattr(fn, "__module__", "")).startswith("keras.src.losses"):
            continue
        name = getattr(fn, "__name__", "")
        if name in ("ctc", "circle"):
            continue
        try:
            shape = [2] + [3 if d is None else int(d) for d in tuple(t.shape)[1:]]
        except (TypeError, ValueError):
            continue
        y_pred = np.full(shape, 0.5, dtype="float32")
        y_true = np.zeros(shape[:-1] if name in _SPARSE and len(shape) > 1 else shape, dtype="float32")
        try:
            loss(y_true, y_pred)
        except Exception as exc:
            raise ModelFileError(info.path, f"the loss of output {out!r} ({describe_loss(loss)}) cannot run on that "
                                 f"output's shape {tuple(t.shape)} ({type(exc).__name__}: {first_line(exc, 150)})",
                                 "the saved loss configuration is damaged or wrong; pass --loss") from exc


def _float_weight(value: Any, info: ModelFileInfo) -> float:
    try:
        out = float(value)
    except (TypeError, ValueError) as exc:
        raise ModelFileError(info.path, f"the saved loss_weights hold {value!r}, not a number",
                             "pass --loss (then every loss weight is 1)") from exc
    return out


def compile_loaded(model, info: ModelFileInfo, custom_objects: dict[str, Any], loss_arg: Any = None,
                   custom_objects_file: Path | None = None) -> LoadedModel:
    """Compile a freshly loaded (uncompiled) model from --loss or the file's compile configuration."""
    notes: list[str] = list(info.load_notes)
    outputs = _outputs(model)
    cc = info.compile_config or {}
    source = "--loss" if loss_arg is not None else "file"
    raw_loss = loss_arg if loss_arg is not None else cc.get("loss")
    steps = custom_steps(model)
    no_loss = raw_loss is None or (isinstance(raw_loss, (list, dict)) and not raw_loss)
    if no_loss and not steps and not adds_losses(model):
        problem = ("the model was saved without a compiled loss (uncompiled model)" if info.compile_config is None
                   else "the model was compiled without a loss, and no layer adds one (add_loss) nor does the model "
                   "compute one in its own train_step/test_step/compute_loss")
        raise ModelFileError(info.path, problem,
                             "pass the loss you train with, e.g. --loss mse or --loss my_losses.py:my_loss")
    per_output_raw = {o: None for o in outputs} if no_loss else _per_output(raw_loss, outputs, "loss", info.path)
    losses: dict[str, Any] = {}
    for out, raw in per_output_raw.items():
        losses[out] = None if raw is None else _resolve_one(info, out, raw, custom_objects, custom_objects_file, notes,
                                                        loss_arg is not None)
    if not no_loss and all(v is None for v in losses.values()):
        raise ModelFileError(info.path, "no output has a loss", "pass --loss")
    for out, loss in losses.items():  # the names the user's loss code shows up under in a traceback
        fn = getattr(loss, "fn", None)
        for obj in (fn, loss):
            name = getattr(obj, "__name__", None) or type(obj).__name__
            module = str(getattr(obj, "__module__", ""))
            if obj is not None and not module.startswith(("keras", "tensorflow", "tf_keras")):
                usercode.register_loss(name, out)
    _smoke_test(model, outputs, losses, info)
    raw_weights = cc.get("loss_weights") if loss_arg is None else None
    weights = {o: 1.0 for o in outputs}
    if raw_weights is not None:
        if isinstance(raw_weights, (int, float)):
            weights = {o: _float_weight(raw_weights, info) for o in outputs}
        else:
            for o, w in _per_output(raw_weights, outputs, "loss_weights", info.path).items():
                weights[o] = 1.0 if w is None else _float_weight(w, info)
    optimizer, optimizer_problem = _build_optimizer(cc.get("optimizer") or cc.get("optimizer_config"), notes)
    compile_losses = [losses[o] for o in outputs]
    from losscheck.loading.metrics import resolve_metrics

    metric_args = {key: resolve_metrics(cc.get(key), custom_objects, notes, key)
                   for key in ("metrics", "weighted_metrics")}
    compile_args: dict[str, Any] = {"optimizer": optimizer}
    if not no_loss:  # else every loss comes from add_loss or the model's own steps, as the user compiled it
        compile_args["loss"] = compile_losses if len(outputs) > 1 else compile_losses[0]
        compile_args["loss_weights"] = [weights[o] for o in outputs] if len(outputs) > 1 else weights[outputs[0]]
    try:
        try:
            model.compile(**compile_args, **{k: v for k, v in metric_args.items() if v is not None})
        except Exception as exc:
            if all(v is None for v in metric_args.values()):
                raise
            notes.append(f"the file's metrics could not be compiled ({type(exc).__name__}: {first_line(exc, 120)}); "
                         "they are left out")
            model.compile(**compile_args)
    except Exception as exc:
        raise ModelFileError(info.path, f"compiling the model failed ({type(exc).__name__}: {first_line(exc, 300)})",
                             "pass --loss to give the loss explicitly") from exc
    if source == "file" and info.format == "h5":
        shown = ", ".join(f"{o}: {describe_loss(v)}" for o, v in losses.items() if v is not None)
        notes.append(f"loss configuration recovered from the .h5 file's training_config ({shown}); Keras 3's own "
                     "compile-on-load is not used, as it fails for most such files")
    restored = _restore_optimizer(model, info, notes) if optimizer_problem is None else False
    return LoadedModel(model, info, outputs, losses, weights, source, restored, notes, custom_objects, loss_arg,
                       custom_objects_file, optimizer_problem=optimizer_problem)


def reload_for_fit(loaded: LoadedModel, unsafe: bool) -> Any:
    """A second, independent copy of the model (same file, same compile, same optimizer state) for
    the fit probe, so the model used for every other figure never changes."""
    model = _keras_load(loaded.info, loaded.custom_objects, unsafe, loaded.custom_objects_file)
    return compile_loaded(model, loaded.info, loaded.custom_objects, loaded.loss_arg,
                          loaded.custom_objects_file).model
