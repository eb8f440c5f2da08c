"""Compile a freshly loaded model from --loss or the file's own compile configuration (losses, loss
weights, metrics, optimizer), recovering what Keras 3 cannot compile on load (legacy compile configs);
`LoadedModel` is the result."""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from losscheck import usercode
from losscheck.core.errors import LosscheckError, ModelFileError, UsageError, first_line
from losscheck.core.taxonomy import SPARSE_KINDS
from losscheck.loading.custom_objects import import_custom_objects
from losscheck.loading.files import ModelFileInfo
from losscheck.loading.load_errors import missing_custom_object, missing_object_error
from losscheck.loading.losses import resolve_loss
from losscheck.loading.lossspec import describe_loss, loss_spec
from losscheck.loading.optimizer import build_optimizer, restore_optimizer
from losscheck.loading.steps import LoopFacts, adds_losses, custom_steps


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

    @functools.cached_property
    def loop(self) -> LoopFacts:
        """How the model's training loop departs from Keras's default one (read from the model once: it walks
        every layer's class)."""
        return LoopFacts.of(self.model, self.compiled_loss)

    @property
    def specs(self):
        return {o: (loss_spec(v) if v is not None else None) for o, v in self.losses.items()}

    def loss_labels(self) -> dict[str, str]:
        return {o: describe_loss(v) for o, v in self.losses.items() if v is not None}


def loss_override(spec: str, custom_objects: dict[str, Any]) -> Any:
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
    optimizer, optimizer_problem = build_optimizer(cc.get("optimizer") or cc.get("optimizer_config"), notes)
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
    restored = restore_optimizer(model, info, notes) if optimizer_problem is None else False
    return LoadedModel(model, info, outputs, losses, weights, source, restored, notes, custom_objects, loss_arg,
                       custom_objects_file, optimizer_problem=optimizer_problem)
