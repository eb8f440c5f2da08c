"""`compare`'s measuring step: every pass `losscheck compare` makes, into one `Measurements`.

One inference pass on the training data (evaluate, the numpy reference, penalties, the loss-function,
metric, target and sample-weight observers), one on the validation data when there is one, the
training-mode passes, a float32 copy for mixed precision, the one-epoch fit (state restored), the
random spread of the training-mode figures; then the frozen records of every area.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import numpy as np

from losscheck.core.config import Config
from losscheck.core.errors import first_line
from losscheck.measurements import Measurements, SemanticMeasurements, frozen, frozen_mapping
from losscheck.probes.batching import probe_limit

Progress = Callable[[str], None]


def measure_compare(cfg: Config, loaded: Any, data: Any, val: Any, split_at: int | None, history: Any,
                    progress: Progress) -> Measurements:
    """Every figure and area record of `compare` on the loaded model and data. `val`: the validation
    Dataset or None (`split_at`: where --validation-split cut DATA); `history`: the read --history or
    None. The model's compiled metrics are put back if they had to be left out for fit."""
    run = _CompareRun(cfg, loaded, data, val, progress)
    try:
        run.inference()
        run.evaluate_figures()
        run.validation_pass()
        run.training_mode()
        run.fit()
        return run.measurements(split_at, history)
    finally:
        run.put_back_metrics()


class _CompareRun:
    """The passes of one compare run, in order, and what they leave for the area records."""

    def __init__(self, cfg: Config, loaded: Any, data: Any, val: Any, progress: Progress) -> None:
        from losscheck.loading.memory import state_variables
        from losscheck.probes.prober import Prober

        self.cfg, self.loaded, self.data, self.val, self.progress = cfg, loaded, data, val, progress
        self.loop = loaded.loop
        # the state a pass may draw from or update (seed generators, layer state); passes never change weights
        self.as_loaded = [(var, np.array(var)) for var in state_variables(loaded.model)
                          if not getattr(var, "trainable", False)]
        self.prober = Prober(loaded, data, cfg.batch_size, cfg.seed)
        self.figures: dict[str, float] = {}
        self.loop_notes: list[str] = []
        self.keras_logs: dict[str, float] | None = None
        self.dropped_metrics: Any = None
        self.inf_val: Any = None
        self.classes_val: Any = None
        self.passes: dict = {}
        self.limit = probe_limit(cfg, data.n)
        self.low: list[Any] = []
        self.training: Any = None
        self.strategy: Any = None

    def inference(self) -> None:
        """The inference pass on the training data with every observer."""
        from losscheck.probes.lossfn import LossFnObservers, measure_static
        from losscheck.probes.metrics import MetricsObserver
        from losscheck.probes.targets import TargetsObserver
        from losscheck.probes.weights import SampleWeightStats

        loaded, prober = self.loaded, self.prober
        self.sw_stats = SampleWeightStats(prober)
        self.classes_train = None
        if self.val is not None:
            from losscheck.probes.validation import SafeClassObserver

            self.classes_train = SafeClassObserver(prober, self.data.n)
        self.metrics_obs, self.targets_obs = MetricsObserver(loaded), TargetsObserver(loaded)
        self.lossfn_static = measure_static(loaded)
        self.lossfn_obs = LossFnObservers.of(self.lossfn_static)
        self.progress("inference pass (evaluate + numpy reference)")
        # the training-mode passes run in the same compiled pass where they can (probes/joint.py)
        variants = None
        if self.loop.training_mode_comparable:
            from losscheck.probes.gaps import training_mode_variants

            variants = training_mode_variants(prober, self.limit)
        self.inf = prober.inference_pass([self.sw_stats, *self.lossfn_obs.all(), self.metrics_obs, self.targets_obs]
                                         + ([self.classes_train] if self.classes_train else []),
                                         metrics=True, variants=variants, class_weight=self.cfg.class_weight,
                                         limit=self.limit)
        if self.inf.metrics_error:
            loaded.notes.append(self.inf.metrics_error + "; they are left out")
            self.dropped_metrics = loaded.model._compile_metrics
            loaded.model._compile_metrics = None  # as compiled without them, so that fit runs; put back after

    def put_back_metrics(self) -> None:
        if self.dropped_metrics is not None:
            self.loaded.model._compile_metrics = self.dropped_metrics

    def evaluate_figures(self) -> None:
        """evaluate (Keras's own for a model with its own loop), manual and regularization where they apply."""
        figures, inf = self.figures, self.inf
        if self.loop.customized:  # Keras's own evaluate, through the model's own steps
            self.progress("Keras's evaluate (the model's own steps)")
            self.keras_logs = own_logs(self.loaded.model, self.data, self.cfg.batch_size, "evaluate", figures,
                                       self.loop_notes)
        else:
            figures["evaluate"] = inf.evaluate
        if inf.manual is not None and self.loop.manual_applies:
            figures["manual"] = inf.manual
        if self.loop.manual_applies:
            figures["regularization"] = inf.regularization

    def validation_pass(self) -> None:
        """The inference pass on the validation data, and evaluate_val."""
        if self.val is None:
            return
        from losscheck.probes.prober import Prober
        from losscheck.probes.validation import SafeClassObserver

        cfg, val = self.cfg, self.val
        self.progress("inference pass on the validation data")
        val_prober = Prober(self.loaded, val, cfg.batch_size, cfg.seed)
        self.classes_val = SafeClassObserver(val_prober, val.n)
        self.inf_val = val_prober.inference_pass([self.classes_val])
        if self.loop.customized:
            own_logs(self.loaded.model, val, cfg.batch_size, "evaluate_val", self.figures, self.loop_notes)
        else:
            self.figures["evaluate_val"] = self.inf_val.evaluate

    def training_mode(self) -> None:
        """The training-mode passes (where they compute what evaluate computes) and the float32 copy."""
        from losscheck.probes.gaps import training_mode_figures
        from losscheck.probes.precision import low_precision_layers

        if self.loop.training_mode_comparable:
            self.progress("training-mode passes")
            train_figures, self.passes = training_mode_figures(self.prober, self.cfg.class_weight, self.limit)
            self.figures.update(train_figures)
        self.main_batches = list(self.prober.last_batches)
        self.low = low_precision_layers(self.loaded.model)
        if self.low and not self.loop.customized:
            self.progress("inference pass of a float32 copy (mixed precision)")
            f32 = self.prober.evaluate_float32()
            if f32 is not None:
                self.figures["evaluate_float32"] = f32

    def fit(self) -> None:
        """Keras's own fit from the state as loaded (one epoch, or up to --fit-epochs, stopped at the first
        non-finite step): fit_epoch, fit_val, the model's own fit logs; that step taken apart."""
        from losscheck.probes.distribute import scope, strategy_for
        from losscheck.probes.divergence import Watch

        figures = self.figures
        fit_logs: dict[str, float] = {}
        self.strategy = strategy_for(self.cfg.distribute)
        if self.loaded.optimizer_problem is not None:  # the loading note says why fit is not run
            return
        epochs = self.cfg.fit_epochs
        self.progress(("one-epoch fit" if epochs == 1 else f"fit of up to {epochs} epochs")
                      + " (on the loaded model, its state restored afterwards)")
        for var, value in self.as_loaded:  # e.g. a SeedGenerator a pass drew from: fit starts as a fresh load
            var.assign(value)
        watch = Watch()
        with scope(self.strategy):  # Keras's own fit, distributed under --distribute
            fit = own_fit(self.loaded, self.data, self.cfg, self.val, fit_logs, self.loop_notes, [watch])
        self._nonfinite(watch)
        if fit is not None:
            figures["fit_epoch"] = fit
        else:
            self.loop_notes.append(f"fit_epoch is not reported: the model's own train_step logs no 'loss' (it logs "
                                   f"{log_list(fit_logs)})")
        if "val_loss" in fit_logs:
            figures["fit_val"] = fit_logs["val_loss"]
        if self.loop.customized:
            figures.update(own_loss_figures(fit_logs, "fit_epoch", figures))

    def _nonfinite(self, watch: Any) -> None:
        """The first non-finite step of the fit, taken apart where it can be (else a note says why)."""
        found, cfg = watch.found, self.cfg
        if found is None:
            if cfg.fit_epochs > 1:
                self.loop_notes.append(f"--fit-epochs {cfg.fit_epochs}: every step of the fit was finite")
            return
        from losscheck._tf import keras

        where = f"epoch {found.epoch + 1}, step {found.step + 1}"
        why = None
        if self.data.pipeline:
            why = "a data pipeline batches itself, so its steps cannot be replayed one by one"
        elif "train_step" in self.loop.steps:
            why = "the model's own train_step computes the step"
        elif keras.backend.backend() != "tensorflow":
            why = "it is taken apart on the TensorFlow backend only"
        elif self.strategy is not None:
            why = "not under --distribute"
        if why is not None:
            self.loop_notes.append(f"training turned non-finite at {where}; that step is not taken apart: {why}")
            return
        from losscheck.probes.divergence import locate

        self.progress(f"replaying the fit up to its first non-finite step ({where})")
        self.training = locate(self.loaded.model, self.data, cfg.batch_size, cfg.class_weight, cfg.seed, found)

    def measurements(self, split_at: int | None, history: Any) -> Measurements:
        """The frozen records of every area, from what the passes measured."""
        from losscheck.loading.legacy import model_facts
        from losscheck.loading.pipelines import data_measurements
        from losscheck.probes.gaps import gap_measurements, low_precision_facts
        from losscheck.probes.lossfn import measure_data
        from losscheck.probes.metric_facts import metric_measurements
        from losscheck.probes.spread import random_spread

        cfg, loaded, data, figures, loop, inf = self.cfg, self.loaded, self.data, self.figures, self.loop, self.inf
        spread = random_spread(figures, cfg.rtol, self.prober, self.passes, self.main_batches, inf, self.limit,
                               self.progress)
        measured_history = None
        if history is not None:
            from losscheck.probes.history import logged_figures, match

            measured_history = match(history, figures, cfg.rtol, self.val is not None, cfg.epoch, cfg.batch_size)
            figures.update(logged_figures(measured_history))
        fit = "fit_logged" if "fit_logged" in figures else "fit_epoch"
        # fit - evaluate is decomposed only when both run Keras's own steps; the custom-step finding says so
        decomposed = (figures if loop.decomposable
                      else {k: v for k, v in figures.items() if k not in ("fit_epoch", "fit_logged")})
        low = self.low
        gaps = gap_measurements(decomposed, self.prober, class_weight=cfg.class_weight, fit_figure=fit,
                                sample_weight=self.sw_stats.summary() if loop.manual_applies else None,
                                probe_samples=self.limit, fit_steps=len(list(data.batch_bounds(cfg.batch_size))),
                                low_precision=low_precision_facts(loaded.model, low) if low else None,
                                uncertainty=spread)
        semantics = SemanticMeasurements.of(inf.semantic) if inf.semantic and "manual" in figures else None
        lossfn = measure_data(self.lossfn_static, self.lossfn_obs, loaded, data, cfg.batch_size, cfg.seed, inf,
                              reported=loop.manual_applies)
        validation = self._validation(decomposed, gaps, split_at)
        # an overridden test_step or compute_metrics: evaluate's metric values are Keras's logs
        own_steps = " and ".join(s for s in loop.steps if s in ("test_step", "compute_metrics"))
        own_metrics = self.keras_logs if own_steps else None
        parity, parity_notes = self._parity()
        metric_rows = self.metrics_obs.section(inf.metrics if own_metrics is None else own_metrics)
        if own_metrics is not None:
            for row in metric_rows.values():
                row.update(manual=None, reason="the model's own " + own_steps + " computes its metrics")
        notes = list(loaded.notes) + self.loop_notes
        if inf.manual_unsupported and "manual" in figures:
            notes.append(f"manual is not computed for outputs {inf.manual_unsupported}")
        notes += parity_notes
        return Measurements("compare", rtol=cfg.rtol, figures=frozen_mapping(figures), model=model_facts(loaded),
                            gaps=gaps, lossfn=lossfn, semantics=semantics,
                            data=data_measurements(data, cfg.batch_size),
                            metrics=(metric_measurements(self.metrics_obs, self.targets_obs, inf, loaded, data)
                                     if own_metrics is None else None),
                            loop=loop_facts(loop, figures, self.keras_logs is not None),
                            validation=validation, history=measured_history, parity=parity,
                            notes=tuple(notes), metric_rows=frozen(metric_rows), training=self.training)

    def _validation(self, decomposed: dict[str, float], gaps: Any, split_at: int | None) -> Any:
        figures = self.figures
        if self.val is None or self.inf_val is None or "evaluate" not in figures or "evaluate_val" not in figures:
            return None
        from losscheck.probes.validation import validation_measurements

        return validation_measurements(decomposed, gaps, self.prober.families, self.data, self.val, split_at,
                                       self.cfg, self.inf, self.inf_val, self.classes_train, self.classes_val)

    def _parity(self) -> tuple[Any, list[str]]:
        cfg, strategy = self.cfg, self.strategy
        if not cfg.parity and strategy is None and cfg.distribute != "multi-process":
            return None, []
        if "evaluate" not in self.figures:
            return None, ["--parity / --distribute: not measured, since evaluate is not reported for this model"]
        from losscheck.probes.parity import measure_parity

        return measure_parity(cfg, self.loaded, self.data, self.figures, self.low, strategy,
                              self.prober.families.names("batchnorm"), self.progress)


def own_fit(loaded: Any, data: Any, cfg: Config, val: Any, logs: dict[str, float], notes: list[str],
            callbacks: list | None = None) -> float | None:
    """fit_epoch_restoring with the validation data; for a model with its own training loop whose
    evaluation Keras cannot run (fit(validation_data=...) raises in Keras too), the fit without it and a
    note that fit_val is not reported."""
    from losscheck.probes.fitting import fit_epoch_restoring

    def run(validation: Any) -> float | None:  # every variable is put back after each try
        return fit_epoch_restoring(loaded.model, data, cfg.batch_size, cfg.class_weight, cfg.seed, validation, logs,
                                   cfg.fit_epochs, callbacks)

    if val is None or not loaded.loop.customized:
        return run(val)
    try:
        return run(val)
    except Exception as exc:  # noqa: BLE001 - Keras's own fit failing on the validation data is reported
        notes.append(f"fit_val is not reported: Keras's own fit(validation_data=...) fails on this model "
                     f"({type(exc).__name__}: {first_line(exc, 120)}); the fit figures come from a fit without it")
        logs.clear()
        return run(None)


def own_logs(model: Any, data: Any, batch_size: int, figure: str, figures: dict[str, float],
             notes: list[str]) -> dict[str, float] | None:
    """Keras's model.evaluate logs on `data` (None, with a note, when evaluate fails); its `loss` becomes
    `figure` and its other `*loss` keys `<figure>_<key>`."""
    from losscheck.probes.parity import keras_evaluate_logs

    try:
        logs = keras_evaluate_logs(model, data, batch_size)
    except Exception as exc:  # noqa: BLE001 - Keras's own evaluate failing is a fact to report, not a crash
        notes.append(f"{figure} is not reported: Keras's own model.evaluate fails on this model "
                     f"({type(exc).__name__}: {first_line(exc, 120)})")
        return None
    if "loss" in logs:
        figures[figure] = logs["loss"]
    else:
        notes.append(f"{figure} is not reported: the model's own test_step logs no 'loss' (it logs {log_list(logs)})")
    figures.update(own_loss_figures(logs, figure, figures))
    return logs


#: a log key losscheck reports as a figure of its own (the model's train/test step's extra losses)
_LOSS_KEY = re.compile(r"[A-Za-z0-9_]{1,64}")


def own_loss_figures(logs: dict[str, float], prefix: str, figures: dict[str, float]) -> dict[str, float]:
    """`<prefix>_<key>` for each log key other than `loss` that names a loss (ends in "loss", e.g.
    total_loss, kl_loss), not a validation log, and is not already a figure."""
    out = {}
    for key, value in logs.items():
        name = f"{prefix}_{key}"
        if (key != "loss" and key.endswith("loss") and not key.startswith("val_") and _LOSS_KEY.fullmatch(key)
                and name not in figures):
            out[name] = value
    return out


def log_list(logs: dict[str, float]) -> str:
    """The log keys, bounded, for a note (renderers escape notes)."""
    keys = [k[:40] for k in list(logs)[:8]]
    return ", ".join(keys) + (", ..." if len(logs) > 8 else "") if keys else "nothing"


def loop_facts(loop: Any, figures: dict[str, float], evaluated: bool) -> Any:
    """The frozen record of the model's own training loop (measurements.model.LoopMeasurements), or None
    for a model trained Keras's default way."""
    from losscheck.measurements.model import LoopMeasurements

    if not loop.customized:
        return None
    return LoopMeasurements(steps=tuple(loop.steps), compiled_loss=loop.compiled_loss, add_loss=loop.add_loss,
                            training_mode=loop.training_mode_comparable, manual=loop.manual_applies,
                            decomposed=loop.decomposable, evaluated=evaluated and "evaluate" in figures,
                            own_figures=tuple(k for k in figures if k.startswith(("evaluate_", "fit_epoch_"))
                                              and k.endswith("loss")))

