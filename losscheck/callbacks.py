"""`losscheck.callbacks.LossCheck`: a Keras callback that explains, after an epoch, the loss fit just
logged against the loss at the epoch's final weights.

Figures: `fit_logged` (logs["loss"]: the batch-size-weighted mean of the losses measured before each
update of the epoch), `evaluate`, `manual`, `regularization`, the training-mode figures at the final
weights (`train_mode`, `train_mode_<family>_only`), `train_mode_class_weighted` with class_weight, and
`val_loss_logged` (logs["val_loss"]) when fit validated. Findings: weight-update (fit_logged against
train_mode), dropout, batchnorm-batch-stats, noise-layer, regularization, class-weight,
sample-weight, unexplained, shuffled-data.

With `on_nonfinite=True` it also watches fit's logged loss after each training batch (the one value
TerminateOnNaN reads, nothing else per batch); when it turns non-finite, it stops training as
TerminateOnNaN does and puts a report with the `nonfinite-in-training` finding and the
`training_nonfinite` section in `reports`: the step replayed from the epoch's start on the callback's
data (one `train_on_batch` per batch before it) and taken apart as `losscheck compare --fit-epochs`
does (TensorFlow backend). Its cost: on the TensorFlow backend, one host copy of the model's state
(weights, optimizer slots, layer statistics) at the start of each epoch; the replay only when the loss
turns non-finite.

Importing this module imports TensorFlow. The callback never runs a fit, and it leaves every
variable, optimizer and metric state, `stop_training`, and all random state exactly as it found them
(loading.memory.preserved), so training with it gives the same weights and history as without (until
a non-finite loss stops it).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from losscheck._tf import keras
from losscheck.report.model import Report


class LossCheck(keras.callbacks.Callback):
    """Explain fit's logged loss once after training (`on="train_end"`, the default: cheap enough to
    leave on) or after every `every`-th epoch (`on="epoch_end"`). `data` (or x=, y=, sample_weight=)
    should be the training data fit sees, in the same order; a tf.data.Dataset or PyDataset is
    streamed with its own batching, arrays are batched by `batch_size` (pass fit's). Pass fit's
    `class_weight` here too. The reports are kept in `reports`; `verbose=1` prints one line per check.
    `on_nonfinite=True`: stop training at the first non-finite logged loss and report where that step
    went non-finite (see the module docstring); the samples of the step are named when fit batches the
    data in order (shuffle=False)."""

    def __init__(self, data: Any = None, *, x: Any = None, y: Any = None, sample_weight: Any = None,
                 every: int = 1, on: str = "train_end", verbose: int = 1, batch_size: int = 32, seed: int = 0,
                 class_weight: Any = None, rtol: float = 1e-4, probe_samples: int | None = None,
                 fail_on: str = "error", select: Any = None, ignore: Any = None, on_nonfinite: bool = False) -> None:
        super().__init__()
        from losscheck.api import _class_weight, _gate
        from losscheck.core.errors import UsageError

        if on not in ("epoch_end", "train_end"):
            raise UsageError(f"on must be 'epoch_end' or 'train_end', not {on!r}")
        if not isinstance(every, int) or every < 1:
            raise UsageError(f"every must be a positive int, not {every!r}")
        if data is None and x is None:
            raise UsageError("LossCheck needs the training data: data= (arrays tuple, tf.data.Dataset, PyDataset, "
                             "file) or x= and y=")
        self.data, self.x, self.y, self.sample_weight = data, x, y, sample_weight
        self.every, self.on, self.verbose = every, on, verbose
        self.batch_size, self.seed, self.rtol, self.probe_samples = batch_size, seed, rtol, probe_samples
        self.class_weight = _class_weight(class_weight)
        self.gate = _gate(fail_on, None, select, ignore)
        self.reports: list[Report] = []
        self._last: tuple[int, dict[str, Any]] | None = None
        self._source: Any = None
        self.on_nonfinite = bool(on_nonfinite)
        self._epoch, self._stopped = 0, False
        self._start: Any = None  # probes.epoch_replay.EpochStart of the epoch being trained
        self._logged: list[float] = []  # the losses fit logged after each batch of that epoch
        if self.on_nonfinite:  # only then a batch hook (one defined on the class stops Keras's async dispatch)
            self.on_train_batch_end = self._watch_batch

    # -- Keras hooks ---------------------------------------------------------------------------
    def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        if self.on_nonfinite and not self._stopped:
            from losscheck.probes.epoch_replay import EpochStart, can_replay

            self._epoch, self._logged = epoch, []
            self._start = EpochStart(self.model, epoch) if can_replay() else None

    def _watch_batch(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        import math

        loss = (logs or {}).get("loss")
        if loss is None or self._stopped:
            return
        value = float(loss)
        self._logged.append(value)
        if not math.isfinite(value):
            self._stopped = True
            self._check_nonfinite(batch, dict(logs or {}))
            self.model.stop_training = True

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        if self._stopped:  # the weights are no longer finite: the report on the non-finite step stands
            return
        self._last = (epoch, dict(logs or {}))
        if self.on == "epoch_end" and (epoch + 1) % self.every == 0:
            self._check(epoch, dict(logs or {}))

    def on_train_end(self, logs: dict[str, Any] | None = None) -> None:
        if self.on == "train_end" and self._last is not None:
            epoch, epoch_logs = self._last
            self._check(epoch, {**epoch_logs, **(logs or {})})

    # -- the check -----------------------------------------------------------------------------
    def _check(self, epoch: int, logs: dict[str, Any]) -> None:
        self._keep(lambda model: self._report(model, epoch, logs))

    def _check_nonfinite(self, batch: int, logs: dict[str, Any]) -> None:
        self._keep(lambda model: self._nonfinite_report(model, batch, logs))

    def _keep(self, build: Any) -> None:
        """The report `build(model)` makes with everything it touches put back, kept (and printed)."""
        from losscheck.loading.memory import preserved

        model = self.model
        with preserved(model):
            report = build(model)
        self.reports.append(report)
        if self.verbose:
            print(summary(report), file=sys.stdout, flush=True)

    def _nonfinite_report(self, model: Any, batch: int, logs: dict[str, Any]) -> Report:
        from losscheck.commands.common import build_header
        from losscheck.loading.memory import loaded_in_memory
        from losscheck.measurements import Measurements
        from losscheck.probes.epoch import is_number
        from losscheck.probes.epoch_replay import locate_watched
        from losscheck.report.nonfinite import nonfinite_report
        from losscheck.rules import judge

        loaded = loaded_in_memory(model)
        data = self._dataset(loaded)
        cfg = self._config()
        training = locate_watched(loaded, data, self.batch_size, self.class_weight, self._start, self._epoch, batch,
                                  self._logged)
        m = Measurements("callback", self.rtol, training=training, notes=tuple(loaded.notes))
        numeric_logs = {k: float(v) for k, v in logs.items() if is_number(v)}
        report = nonfinite_report(build_header(cfg, loaded, data), m, judge(m), self._epoch, batch, numeric_logs)
        return self.gate.apply(report)

    def _config(self) -> Any:
        from losscheck.api import data_label
        from losscheck.core.config import Config
        from losscheck.loading.memory import LABEL

        return Config(model_path=Path(LABEL), data_path=Path(data_label(self.data)), batch_size=self.batch_size,
                      class_weight=self.class_weight, seed=self.seed, rtol=self.rtol, probe_samples=self.probe_samples)

    def _dataset(self, loaded: Any) -> Any:
        from losscheck.api import make_data
        from losscheck.loading.inputs import input_names

        if self._source is None:
            self._source = make_data(self.data, self.x, self.y, self.sample_weight, loaded,
                                     input_names(loaded.model), loaded.output_names)
        return self._source

    def _report(self, model: Any, epoch: int, logs: dict[str, Any]) -> Report:
        from losscheck.commands.common import build_header
        from losscheck.loading.memory import loaded_in_memory
        from losscheck.probes.epoch import is_number, measure_epoch
        from losscheck.report.assemble import callback_report
        from losscheck.rules import judge

        loaded = loaded_in_memory(model)
        data = self._dataset(loaded)
        cfg = self._config()
        m = measure_epoch(loaded, data, cfg, logs)
        numeric_logs = {k: float(v) for k, v in logs.items() if is_number(v)}
        report = callback_report(build_header(cfg, loaded, data), m, judge(m), epoch, numeric_logs)
        return self.gate.apply(report)


def summary(report: Report) -> str:
    """One line: the epoch, the report's headline (report/headline.py) and the findings' codes with
    their sizes."""
    from losscheck.core.formatting import sig

    if "training_nonfinite" in report.sections:
        epoch = int(report.sections.get("epoch", 0)) + 1
        return f"losscheck epoch {epoch}: training stopped: " + " ".join(f.message for f in report.findings)
    found = ", ".join(f"{f.code}" + ("" if f.magnitude is None else f" {sig(f.magnitude, 3, signed=True)}")
                      for f in report.findings)
    return (f"losscheck epoch {int(report.sections.get('epoch', 0)) + 1}: {report.summary}"
            + (f" | {found}" if found else " | no findings"))
