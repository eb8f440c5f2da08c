"""Load a Keras model file (Keras 3 .keras/.h5, tf.keras 2.x .h5) and compile it from the file's own
compile configuration, recovering what Keras 3 cannot compile on load (see keras-loss-semantics §5.3).

Always `load_model(compile=False)`, then: loss/loss_weights/optimizer parsed from the file (or
--loss), `model.compile(...)`, optimizer state restored from the file when the shapes fit.
"""

from __future__ import annotations

import copy
import importlib.util
import io
import sys
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from losscheck._tf import keras
from losscheck.errors import ModelFileError, UsageError
from losscheck.loading.files import ModelFileInfo, read_model_file_info
from losscheck.loading.losses import resolve_loss
from losscheck.lossspec import describe_loss, loss_spec

LAMBDA_HINT = ("it contains a Lambda layer whose Python bytecode would have to be executed to load it; "
               "pass --unsafe only if you trust the file")


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

    @property
    def specs(self):
        return {o: (loss_spec(l) if l is not None else None) for o, l in self.losses.items()}

    def loss_labels(self) -> dict[str, str]:
        return {o: describe_loss(l) for o, l in self.losses.items() if l is not None}


def import_custom_objects(path: Path | None) -> dict[str, Any]:
    """Import FILE.py; use its `custom_objects` dict if it has one, else its public functions and classes."""
    if path is None:
        return {}
    path = Path(path)
    if not path.is_file():
        raise UsageError(f"{path}: --custom-objects file not found; pass the .py file that defines your losses/layers")
    name = f"losscheck_custom_{abs(hash(str(path.resolve())))}"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise UsageError(f"{path}: cannot be imported as Python; pass a .py file")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    sys.dont_write_bytecode = True  # never write __pycache__ beside the user's file
    try:
        spec.loader.exec_module(module)
    except Exception as exc:  # the user's code: any error is theirs to see, in one line
        raise UsageError(f"{path}: importing the custom objects file failed: {type(exc).__name__}: {exc}") from exc
    explicit = getattr(module, "custom_objects", None)
    if isinstance(explicit, dict):
        return dict(explicit)
    out = {}
    for key, value in vars(module).items():
        if key.startswith("_") or not callable(value):
            continue
        if getattr(value, "__module__", None) != name:
            continue
        out[key] = value
    return out


def _keras_load(info: ModelFileInfo, custom_objects: dict[str, Any], unsafe: bool):
    path = info.path
    try:
        return keras.saving.load_model(str(path), custom_objects=custom_objects or None, compile=False,
                                       safe_mode=not unsafe)
    except Exception as exc:
        raise _load_error(path, exc) from exc


def _load_error(path: Path, exc: Exception) -> ModelFileError:
    text = str(exc)
    low = text.lower()
    if "lambda" in low and ("safe_mode" in low or "unsafe" in low or "deserializ" in low):
        return ModelFileError(path, "refused to load", LAMBDA_HINT)
    if "could not locate" in low or "unknown layer" in low or "unknown object" in low or "unknown loss" in low:
        import re

        m = re.search(r"(?:class|function|layer|object|loss)[:\s]+'?\"?([A-Za-z_][\w.]*)", text)
        what = m.group(1) if m else "a custom object"
        return ModelFileError(path, f"uses the custom object {what!r}, which is not available",
                              "pass the file that defines it with --custom-objects FILE.py")
    first = text.strip().splitlines()[0] if text.strip() else type(exc).__name__
    return ModelFileError(path, f"Keras could not load the model ({type(exc).__name__}: {first[:300]})",
                          "check that it was saved with model.save() by Keras 3 or tf.keras 2.x")


def _loss_override(spec: str, custom_objects: dict[str, Any]) -> Any:
    """--loss: a Keras loss name or FILE.py:NAME."""
    if ":" in spec and spec.split(":", 1)[0].endswith(".py"):
        file, name = spec.rsplit(":", 1)
        objs = import_custom_objects(Path(file))
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
        return layer_names
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
        return dict(zip(outputs, structure))
    return {o: structure for o in outputs}


def _is_serialized_object(d: dict) -> bool:
    return "class_name" in d and "config" in d


def _build_optimizer(config: Any, notes: list[str]):
    if config is None:
        notes.append("no optimizer in the file: the fit probe uses SGD(learning_rate=0.01)")
        return keras.optimizers.SGD(0.01)
    try:
        if isinstance(config, str):
            return keras.optimizers.get(config)
        cfg = copy.deepcopy(config)
        inner = cfg.get("config", {}) if isinstance(cfg, dict) else {}
        if isinstance(inner, dict):
            for key in ("is_legacy_optimizer", "jit_compile", "decay"):
                inner.pop(key, None)
            lr = inner.get("learning_rate")
            if isinstance(lr, dict) and "class_name" in lr and "module" not in lr:
                lr.setdefault("module", "keras.optimizers.schedules")
        if "module" not in cfg:
            name = str(cfg["class_name"]).split(">")[-1]  # tf.keras writes "Custom>Adam"
            cfg = {"class_name": name, "config": inner}
        return keras.optimizers.deserialize(cfg)
    except Exception as exc:
        notes.append(f"the saved optimizer could not be rebuilt ({type(exc).__name__}); the fit probe uses SGD(0.01)")
        return keras.optimizers.SGD(0.01)


def _optimizer_values(info: ModelFileInfo) -> list[Any] | None:
    import h5py
    import numpy as np

    try:
        if info.format == "keras":
            with zipfile.ZipFile(info.path, "r") as zf:
                if "model.weights.h5" not in zf.namelist():
                    return None
                data = zf.read("model.weights.h5")
            with h5py.File(io.BytesIO(data), "r") as f:
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
    except Exception:
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
        if len(variables) != len(values) or any(tuple(v.shape) != tuple(a.shape) for v, a in zip(variables, values)):
            notes.append("the saved optimizer state does not match this Keras's optimizer layout; the fit probe "
                         "starts from a fresh optimizer state")
            return False
        for v, a in zip(variables, values):
            v.assign(a)
        return True
    except Exception as exc:
        notes.append(f"the saved optimizer state could not be restored ({type(exc).__name__})")
        return False


def load_model(path: Path, *, custom_objects_file: Path | None = None, loss: str | None = None,
               unsafe: bool = False) -> LoadedModel:
    """Load and compile. Raises ModelFileError/UsageError with one-line messages."""
    info = read_model_file_info(Path(path))
    custom_objects = import_custom_objects(custom_objects_file)
    loss_arg = _loss_override(loss, custom_objects) if loss else None
    model = _keras_load(info, custom_objects, unsafe)
    return compile_loaded(model, info, custom_objects, loss_arg)


def compile_loaded(model, info: ModelFileInfo, custom_objects: dict[str, Any], loss_arg: Any = None) -> LoadedModel:
    """Compile a freshly loaded (uncompiled) model from --loss or the file's compile configuration."""
    notes: list[str] = []
    outputs = _outputs(model)
    cc = info.compile_config or {}
    source = "--loss" if loss_arg is not None else "file"
    raw_loss = loss_arg if loss_arg is not None else cc.get("loss")
    if raw_loss is None or (isinstance(raw_loss, (list, dict)) and not raw_loss):
        raise ModelFileError(info.path, "the model was saved without a compiled loss",
                             "pass the loss you train with, e.g. --loss mse or --loss my_losses.py:my_loss")
    per_output_raw = _per_output(raw_loss, outputs, "loss", info.path)
    losses: dict[str, Any] = {}
    for out, raw in per_output_raw.items():
        try:
            losses[out] = None if raw is None else resolve_loss(raw, custom_objects)
        except LookupError as exc:
            raise ModelFileError(info.path, f"the loss {exc.args[0]!r} of output {out!r} is not a Keras loss and "
                                 "was not provided", "pass the file that defines it with --custom-objects FILE.py") from exc
        except (ValueError, TypeError) as exc:
            raise ModelFileError(info.path, f"the loss of output {out!r} cannot be rebuilt ({exc})",
                                 "pass --loss to give it explicitly") from exc
    if all(v is None for v in losses.values()):
        raise ModelFileError(info.path, "no output has a loss", "pass --loss")
    raw_weights = cc.get("loss_weights") if loss_arg is None else None
    weights = {o: 1.0 for o in outputs}
    if raw_weights is not None:
        if isinstance(raw_weights, (int, float)):
            weights = {o: float(raw_weights) for o in outputs}
        else:
            for o, w in _per_output(raw_weights, outputs, "loss_weights", info.path).items():
                weights[o] = 1.0 if w is None else float(w)
    optimizer = _build_optimizer(cc.get("optimizer") or cc.get("optimizer_config"), notes)
    compile_losses = [losses[o] for o in outputs]
    try:
        model.compile(
            optimizer=optimizer,
            loss=compile_losses if len(outputs) > 1 else compile_losses[0],
            loss_weights=[weights[o] for o in outputs] if len(outputs) > 1 else weights[outputs[0]],
        )
    except Exception as exc:
        raise ModelFileError(info.path, f"compiling the model failed ({type(exc).__name__}: {exc})",
                             "pass --loss to give the loss explicitly") from exc
    restored = _restore_optimizer(model, info, notes)
    return LoadedModel(model, info, outputs, losses, weights, source, restored, notes, custom_objects, loss_arg)


def reload_for_fit(loaded: LoadedModel, unsafe: bool) -> Any:
    """A second, independent copy of the model (same file, same compile, same optimizer state) for
    the fit probe, so the model used for every other figure never changes."""
    model = _keras_load(loaded.info, loaded.custom_objects, unsafe)
    return compile_loaded(model, loaded.info, loaded.custom_objects, loaded.loss_arg).model
