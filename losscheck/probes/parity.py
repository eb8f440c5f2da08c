"""evaluate under other execution settings (`--parity`): Keras's own evaluate with jit_compile forced on
or off (on the loaded model, its state restored afterwards), and Keras's evaluate and the fit probe's
one-epoch fit on another backend, in a subprocess started with that backend
(losscheck.probes.backend_eval)."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from typing import Any

import numpy as np

from losscheck._tf import keras
from losscheck.loading.memory import state_variables
from losscheck.loading.steps import adds_losses
from losscheck.probes.batching import H5Sequence, structure
from losscheck.probes.data_errors import data_errors

#: the backends --parity backends re-measures on, when installed
PARITY_BACKENDS = ("tensorflow", "jax", "torch")
#: seconds one other backend may take (import, load, one evaluate, one epoch of fit)
BACKEND_TIMEOUT_S = 600


@data_errors
def keras_evaluate(model, data, batch_size: int, jit_compile: bool | None = None) -> float:
    """model.evaluate(x, y, batch_size, sample_weight) as Keras reports it (the total loss); with
    `jit_compile` True/False, under that setting. The model's jit setting, compiled test function and
    every state variable (metrics, loss trackers) are put back afterwards."""
    logs = keras_evaluate_logs(model, data, batch_size, jit_compile)
    if "loss" not in logs:
        raise ValueError(f"model.evaluate logs no 'loss' (it logs {', '.join(k[:40] for k in list(logs)[:8])})")
    return logs["loss"]


def keras_evaluate_logs(model, data, batch_size: int, jit_compile: bool | None = None) -> dict[str, float]:
    """Every log of model.evaluate(..., return_dict=True) (the model's own test_step, when it has one), as
    floats; state put back as keras_evaluate does. Raises what evaluate raises."""
    saved_jit = model._jit_compile
    snapshot = [(var, np.array(var)) for var in state_variables(model)]
    try:
        if jit_compile is not None:
            model.jit_compile = jit_compile
            model.test_function = None
        if data.pipeline:
            out = model.evaluate(data.keras_input(), verbose=0, return_dict=True)
        elif data.streamed:
            out = model.evaluate(H5Sequence(data, batch_size), verbose=0, return_dict=True)
        else:
            xs, ys, sw = data.slice(0, data.n)
            out = model.evaluate(structure(xs), structure(ys), batch_size=batch_size, sample_weight=sw,
                                 verbose=0, return_dict=True)
        return {str(k): float(np.asarray(v)) for k, v in out.items() if np.asarray(v).size == 1}
    finally:
        if jit_compile is not None:
            model._jit_compile = saved_jit
            model.test_function = None
        for var, value in snapshot:
            var.assign(value)


def installed_backends() -> list[str]:
    import importlib.util

    return [b for b in PARITY_BACKENDS if importlib.util.find_spec(b) is not None]


def backend_figures(backend: str, cfg, fit: bool) -> dict[str, float]:
    """{"evaluate": Keras's evaluate[, "fit_epoch": the fit probe's one-epoch fit, with `fit`]} of the same
    model file and data file on `backend`, from a subprocess (Keras picks its backend once per process).
    Raises RuntimeError with the reason when it cannot."""
    if cfg.inputs is not None:
        raise RuntimeError("a model or data built in this process (in memory, FILE.py:FUNC or a TFRecord "
                           "folder) cannot be passed to another process")
    if cfg.validation_split is not None:
        raise RuntimeError("not measured with --validation-split")
    args = [sys.executable, "-m", "losscheck.probes.backend_eval", backend, str(cfg.model_path), str(cfg.data_path),
            "--batch-size", str(cfg.batch_size), "--seed", str(cfg.seed)]
    if cfg.custom_objects is not None:
        args += ["--custom-objects", str(cfg.custom_objects)]
    if cfg.loss:
        args += ["--loss", cfg.loss]
    if cfg.unsafe:
        args.append("--unsafe")
    if fit:
        args.append("--fit")
        if cfg.class_weight:
            args += ["--class-weight", json.dumps({str(k): float(v) for k, v in cfg.class_weight.items()})]
    env = {**os.environ, "KERAS_BACKEND": backend}
    try:
        done = subprocess.run(args, env=env, capture_output=True, text=True, timeout=BACKEND_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        raise RuntimeError(f"took over {BACKEND_TIMEOUT_S} s") from None
    lines = [ln for ln in done.stdout.splitlines() if ln.startswith("{")]
    if done.returncode != 0 or not lines:
        why = (done.stderr.strip().splitlines() or [f"exit status {done.returncode}"])[-1]
        raise RuntimeError(why[:300])
    result: dict[str, Any] = json.loads(lines[-1])
    return {k: float(result[k]) for k in ("evaluate", "fit_epoch") if result.get(k) is not None}


def uses_logits_shortcut(loaded) -> bool:
    """Some output's crossentropy (from_logits=False) follows a softmax/sigmoid, whose logits
    TensorFlow's crossentropy uses instead of the clipped probabilities."""
    from losscheck.probes.lossfn.graph import output_facts
    from losscheck.reference.specs import LOGITS_SHORTCUT_KINDS

    try:
        facts = {f.name: f for f in output_facts(loaded.model, list(loaded.output_names))}
    except Exception:  # noqa: BLE001 - a graph losscheck cannot read: no claim
        return False
    for name, spec in loaded.specs.items():
        fact = facts.get(name)
        if spec is None or fact is None or spec.kind not in LOGITS_SHORTCUT_KINDS:
            continue
        if not spec.options.get("from_logits") and fact.activation in ("softmax", "sigmoid"):
            return True
    return False


def measure_parity(cfg, loaded, data, figures: dict[str, float], low_precision: list[Any], strategy: Any,
                   batchnorm: list[str], progress=lambda _msg: None):
    """(ParityMeasurements, notes) for `cfg.parity` (a subset of backends, jit, float32) and, with a
    `strategy` (--distribute), Keras's evaluate under it and the one-epoch fit of a copy loaded on one
    device. Adds the figures it measures to `figures` (evaluate_jit, evaluate_nojit, evaluate_<backend>,
    fit_epoch_<backend> where fit_epoch is measured here, evaluate_distributed, fit_epoch_one_device);
    `notes` say what could not be measured."""
    from losscheck.measurements.parity import ParityMeasurements

    settings = cfg.parity
    here = keras.backend.backend()
    notes: list[str] = []
    backends: dict[str, float] = {}
    fits: dict[str, float] = {}
    errors: dict[str, str] = {}
    if "backends" in settings:
        _other_backends(cfg, here, "fit_epoch" in figures, figures, backends, fits, errors, notes, progress)
    jit = nojit = None
    if "jit" in settings:
        progress("evaluate with jit_compile on and off")
        try:
            jit = keras_evaluate(loaded.model, data, cfg.batch_size, jit_compile=True)
            nojit = keras_evaluate(loaded.model, data, cfg.batch_size, jit_compile=False)
        except Exception as exc:  # noqa: BLE001 - XLA may not compile a model that runs without it
            jit = nojit = None
            reason = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else ""
            notes.append(f"--parity jit: evaluate with jit_compile on and off could not be measured "
                         f"({type(exc).__name__}: {reason})")
        else:
            figures["evaluate_jit"], figures["evaluate_nojit"] = jit, nojit
    f32 = None
    if "float32" in settings:
        if not low_precision:
            notes.append("--parity float32: the model computes in float32 already")
        elif figures.get("evaluate_float32") is not None:
            f32 = figures["evaluate_float32"]
        else:  # evaluate_float32 is measured for every low-precision model: only a failed copy lacks it
            notes.append("--parity float32: the model could not be rebuilt with float32 policies")
    distributed = fit_one = None
    replicas = 1
    if strategy is not None:
        from losscheck.loading.inputs import load_inputs
        from losscheck.probes.distribute import scope
        from losscheck.probes.fitting import fit_epoch

        replicas = int(strategy.num_replicas_in_sync)
        progress(f"evaluate under {cfg.distribute} distribution ({replicas} replicas)")
        with scope(strategy):
            distributed = figures["evaluate_distributed"] = keras_evaluate(loaded.model, data, cfg.batch_size)
        progress("one-epoch fit of a copy on one device")
        single, _ = load_inputs(dataclasses.replace(cfg, data_path=None), lambda _msg: None)
        fit_one = fit_epoch(single.model, data, cfg.batch_size, cfg.class_weight, cfg.seed)
        if fit_one is not None:  # None: the model's own train_step logs no loss
            figures["fit_epoch_one_device"] = fit_one
        notes.append(f"--distribute {cfg.distribute}: {replicas} replica(s) on "
                     f"{', '.join(strategy.extended.worker_devices)}; fit_epoch is Keras's distributed fit")
    multiprocess = None
    if cfg.distribute == "multi-process":
        from losscheck.probes.multiprocess import measure_multiprocess

        multiprocess, more = measure_multiprocess(cfg, loaded, data, figures, progress)
        notes += more
    dtypes = tuple(sorted({str(getattr(lyr, "compute_dtype", "")) for lyr in low_precision}))
    from losscheck.probes.layers import LayerFamilies

    families = LayerFamilies.of(loaded.model)
    record = ParityMeasurements(
        backend=here, evaluate=figures["evaluate"], backends=_frozen(backends), backend_errors=_frozen(errors),
        fit_epoch=figures.get("fit_epoch") if fits else None, fits=_frozen(fits),
        random_layers=tuple(families.names("dropout") + families.names("noise")),
        jit=jit, nojit=nojit, float32=f32, low_precision=dtypes,
        logits_shortcut=uses_logits_shortcut(loaded), add_loss=adds_losses(loaded.model),
        distributed=distributed, replicas=replicas,
        fit_distributed=figures.get("fit_epoch") if fit_one is not None else None,
        fit_one_device=fit_one, batchnorm=tuple(batchnorm), multiprocess=multiprocess)
    return record, notes


def _other_backends(cfg, here: str, fit: bool, figures: dict[str, float], backends: dict[str, float],
                    fits: dict[str, float], errors: dict[str, str], notes: list[str], progress) -> None:
    """evaluate_<backend> and, with `fit`, fit_epoch_<backend> on each other installed backend."""
    others = [b for b in installed_backends() if b != here]
    if not others:
        notes.append(f"--parity backends: no other Keras backend is installed besides {here} "
                     '(pip install "losscheck[jax]" or "losscheck[torch]")')
    for other in others:
        progress(f"evaluate{' and the one-epoch fit' if fit else ''} on the {other} backend (a subprocess)")
        try:
            measured = backend_figures(other, cfg, fit)
        except (RuntimeError, OSError, ValueError) as exc:
            errors[other] = str(exc)
            notes.append(f"--parity backends: evaluate on {other} could not be measured ({exc})")
            continue
        backends[other] = figures[f"evaluate_{other}"] = measured["evaluate"]
        if "fit_epoch" in measured:
            fits[other] = figures[f"fit_epoch_{other}"] = measured["fit_epoch"]
        elif fit:
            notes.append(f"--parity backends: the one-epoch fit on {other} logs no 'loss'")


def _frozen(d: dict) -> Any:
    from losscheck.measurements import frozen_mapping

    return frozen_mapping(d)
