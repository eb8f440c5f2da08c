"""The one registry of loss figures: each figure's name (or name pattern), what it is, how it is
obtained, which commands report it and which module measures it.

Every figure's value is a loss in the loss's own units. The report's figure descriptions, the report
order, the figures --max-gap bounds and the ones measured on the --probe-samples subset are all read
from here. Pure Python: no TensorFlow.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

#: how a figure is obtained: "keras" (Keras's own evaluate or fit, run by losscheck, or what they
#: compute), "logged" (read from the logs of the user's own fit), "probe" (losscheck's pass through the
#: compiled loss in a chosen layer behaviour or precision), "numpy" (losscheck's own recomputation),
#: "penalty" (the sum of model.losses)
KINDS = ("keras", "logged", "probe", "numpy", "penalty")


@dataclass(frozen=True)
class FigureSpec:
    """One figure. `name` is the figure's name, or a pattern with one `<key>` placeholder (a log key of
    the model's own step); `description` is what the report says it is (a pattern's, with `{key}`),
    `described` overrides it per command; `brief`: the few words the table and markdown show (the
    description when empty; JSON and docs/figures.md keep the description); `ordered`: shown in
    registry order ahead of the other figures
    (which follow in the order measured); `gated`: bounded against evaluate by --max-gap; `subset`:
    measured on the --probe-samples subset only."""

    name: str
    description: str
    kind: str
    commands: tuple[str, ...]
    measured_in: str
    ordered: bool = False
    gated: bool = False
    subset: bool = False
    described: Mapping[str, str] = field(default_factory=dict)
    brief: str = ""

    @property
    def pattern(self) -> bool:
        """True for a name pattern (`fit_epoch_<key>`)."""
        return "<" in self.name

    def description_for(self, command: str) -> str:
        """What `command`'s report says this figure is."""
        return self.described.get(command, self.description)

    @property
    def short(self) -> str:
        """What the table and markdown say it is: `brief`, else the description."""
        return self.brief or self.description


_COMPARE = ("compare",)
_BOTH = ("compare", "callback")
_ALL = ("compare", "breakdown", "callback")
_PROBER = "losscheck.probes"
_GAPS = "losscheck.probes.gaps"
_PARITY = "losscheck.probes.parity"
_MULTI = "losscheck.probes.multiprocess"
_STEP = "losscheck.probes.compare"
_EPOCH = "losscheck.probes.epoch"
_OWN = "(a loss the model's own step logs)"

FIGURES: dict[str, FigureSpec] = {f.name: f for f in (
    FigureSpec("fit_logged", "the loss fit logged for this epoch (logs['loss']): the mean of the losses measured "
               "before each update of the epoch", "logged", _BOTH, _EPOCH, ordered=True,
               described={"compare": "the loss --history logs for the epoch the weights are from: the mean of the "
                                     "losses measured before each update of that epoch"},
               brief="the loss fit logged for the epoch"),
    FigureSpec("fit_epoch", "what model.fit(..., epochs=1, shuffle=False) reports from the saved weights and "
               "optimizer state (every variable is restored afterwards; the file is never written)", "keras",
               _COMPARE, _STEP, ordered=True, gated=True,
               brief="model.fit(epochs=1, shuffle=False) from the saved weights"),
    FigureSpec("train_mode_class_weighted", "train_mode with --class-weight applied as fit applies it", "probe",
               _BOTH, _GAPS, ordered=True, subset=True, brief="train_mode with --class-weight"),
    FigureSpec("train_mode", "every layer in training behaviour, saved weights, no update, no class weight (what a "
               "fit step measures first)", "probe", _BOTH, _GAPS, ordered=True, gated=True, subset=True,
               brief="every layer in training mode, saved weights, no update"),
    FigureSpec("train_mode_dropout_only", "only Dropout-family layers in training behaviour", "probe", _BOTH, _GAPS,
               ordered=True, subset=True, brief="only Dropout layers in training mode"),
    FigureSpec("train_mode_batchnorm_only", "only BatchNormalization in training behaviour (batch statistics)",
               "probe", _BOTH, _GAPS, ordered=True, subset=True,
               brief="only BatchNorm in training mode (batch statistics)"),
    FigureSpec("train_mode_noise_only", "only noise/augmentation layers in training behaviour", "probe", _BOTH,
               _GAPS, ordered=True, subset=True, brief="only noise/augmentation layers in training mode"),
    FigureSpec("train_mode_custom_only", "only the other layers whose call() takes `training` (custom layers) in "
               "training behaviour", "probe", _BOTH, _GAPS, ordered=True, subset=True,
               brief="only the other `training` layers in training mode"),
    FigureSpec("evaluate_probe_subset", "what model.evaluate(...) reports on the --probe-samples subset (what the "
               "training-mode figures are compared with)", "probe", _BOTH, _GAPS, ordered=True, subset=True,
               brief="evaluate on the --probe-samples subset"),
    FigureSpec("evaluate", "what model.evaluate(...) reports (total loss)", "keras", _ALL, _PROBER, ordered=True,
               brief="model.evaluate(...)"),
    FigureSpec("evaluate_float32", "evaluate of an in-memory copy of the model with float32 dtype policies and the "
               "same weights", "probe", _COMPARE, _PROBER, ordered=True, brief="evaluate of a float32 copy"),
    FigureSpec("manual", "losscheck's numpy recomputation of the data loss from inference outputs (no penalties)",
               "numpy", _ALL, _PROBER, ordered=True,
               described={"breakdown": "losscheck's numpy data loss (Keras's semantics, penalties excluded)"},
               brief="numpy recomputation from the outputs (no penalties)"),
    FigureSpec("regularization", "penalties (model.losses) included in evaluate", "penalty", _ALL, _PROBER,
               ordered=True, brief="penalties (model.losses) in evaluate"),
    FigureSpec("val_loss_logged", "the validation loss fit logged for this epoch (logs['val_loss']), on the "
               "validation data", "logged", _BOTH, _EPOCH, ordered=True,
               described={"compare": "the val_loss --history logs for the epoch the weights are from"},
               brief="the val_loss fit logged for the epoch"),
    FigureSpec("evaluate_val", "what val_loss / model.evaluate(...) on the validation data reports at the saved "
               "weights", "keras", _COMPARE, _PROBER, brief="model.evaluate(...) on the validation data"),
    FigureSpec("fit_val", "the val_loss fit logs after the fit_epoch probe's epoch (validation data evaluated with "
               "the weights after that epoch, as fit(validation_data=...) / fit(validation_split=F) reports it)",
               "keras", _COMPARE, _STEP, brief="val_loss after fit_epoch's epoch"),
    FigureSpec("evaluate_distributed", "model.evaluate(...) under --distribute (each batch split across the "
               "replicas)", "keras", _COMPARE, _PARITY),
    FigureSpec("fit_epoch_one_device", "with --distribute: fit_epoch of a copy of the model on one device", "keras",
               _COMPARE, _PARITY),
    FigureSpec("evaluate_multiprocess", "model.evaluate(...) under --distribute multi-process: Keras's own over "
               "every process (DataParallel, a global batch of --batch-size, from the saved weights)", "keras",
               _COMPARE, _MULTI),
    FigureSpec("fit_epoch_multiprocess", "model.fit(..., epochs=1, shuffle=False) under --distribute multi-process: "
               "Keras's own over every process, from the saved weights", "keras", _COMPARE, _MULTI),
    FigureSpec("manual_multiprocess", "with --distribute multi-process: the numpy data loss combined from each "
               "process's sums over its own shard (the shards section)", "numpy", _COMPARE, _MULTI),
    FigureSpec("evaluate_jit", "model.evaluate(...) with jit_compile=True (XLA), --parity jit", "keras", _COMPARE,
               _PARITY),
    FigureSpec("evaluate_nojit", "model.evaluate(...) with jit_compile=False, --parity jit", "keras", _COMPARE,
               _PARITY),
    FigureSpec("evaluate_tensorflow", "model.evaluate(...) on the TensorFlow backend (a subprocess), --parity "
               "backends", "keras", _COMPARE, _PARITY),
    FigureSpec("evaluate_jax", "model.evaluate(...) on the JAX backend (a subprocess), --parity backends", "keras",
               _COMPARE, _PARITY),
    FigureSpec("evaluate_torch", "model.evaluate(...) on the torch backend (a subprocess), --parity backends",
               "keras", _COMPARE, _PARITY),
    FigureSpec("fit_epoch_tensorflow", "fit_epoch on the TensorFlow backend (a subprocess: the same saved weights "
               "and optimizer state, the same seed), --parity backends", "keras", _COMPARE, _PARITY),
    FigureSpec("fit_epoch_jax", "fit_epoch on the JAX backend (a subprocess: the same saved weights and optimizer "
               "state, the same seed), --parity backends", "keras", _COMPARE, _PARITY),
    FigureSpec("fit_epoch_torch", "fit_epoch on the torch backend (a subprocess: the same saved weights and "
               "optimizer state, the same seed), --parity backends", "keras", _COMPARE, _PARITY),
    # patterns, most specific prefix first (evaluate_val_ before evaluate_)
    FigureSpec("fit_epoch_<key>", f"what model.fit(..., epochs=1, shuffle=False) logs as {{key}} {_OWN}", "keras",
               _COMPARE, _STEP),
    FigureSpec("evaluate_val_<key>", f"what model.evaluate(...) on the validation data logs as {{key}} {_OWN}",
               "keras", _COMPARE, _STEP),
    FigureSpec("evaluate_<key>", f"what model.evaluate(...) logs as {{key}} {_OWN}", "keras", _BOTH, _STEP),
)}

#: figure order in every report (the others follow in the order measured)
FIGURE_ORDER = tuple(name for name, f in FIGURES.items() if f.ordered)
#: the figures --max-gap bounds against evaluate
GATED_FIGURES = tuple(name for name, f in FIGURES.items() if f.gated)
#: figures measured on the --probe-samples subset only
SUBSET_FIGURES = tuple(name for name, f in FIGURES.items() if f.subset)


def figure_descriptions(command: str) -> dict[str, str]:
    """name -> description of the (non-pattern) figures `command` reports."""
    return {name: f.description_for(command) for name, f in FIGURES.items()
            if not f.pattern and command in f.commands}


def own_figure_description(name: str) -> str:
    """What a figure named after the model's own log key is (fit_epoch_<key>, evaluate_val_<key>,
    evaluate_<key>); the name itself when no pattern matches."""
    for pattern, f in FIGURES.items():
        prefix = pattern.split("<", 1)[0]
        if f.pattern and name.startswith(prefix):
            return f.description.format(key=name[len(prefix):])
    return name
