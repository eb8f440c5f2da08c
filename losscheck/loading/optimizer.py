"""The optimizer a loaded model is compiled with: rebuilt from the file's compile configuration, its
saved state (slots, iterations) restored when the shapes fit, a placeholder when it cannot be rebuilt
(then no fit figure is measured)."""

from __future__ import annotations

import copy
import zipfile
from typing import Any

from losscheck._tf import keras
from losscheck.core.errors import first_line
from losscheck.loading.archive import open_member_h5
from losscheck.loading.files import ModelFileInfo
from losscheck.notes import FIT, Note

#: the optimizer a model is compiled with when the file's cannot be rebuilt: never used for a figure
PLACEHOLDER_OPTIMIZER = "sgd"


def build_optimizer(config: Any, notes: list[str]) -> tuple[Any, str | None]:
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


def restore_optimizer(model, info: ModelFileInfo, notes: list[str]) -> bool:
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
