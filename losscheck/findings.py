"""Severities, the finding-code registry, Finding, Figure and Report (with its exit code).

Pure Python: no TensorFlow, no printing. The registry is the single source for the README table,
--select/--ignore validation and default severities.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any

from losscheck.gate import Gate
from losscheck.taxonomy import FAMILIES, family_figure


class Severity(enum.IntEnum):
    """How serious a finding is: info < warning < error (compared with --fail-on)."""
    INFO = 1
    WARNING = 2
    ERROR = 3

    def __str__(self) -> str:
        return self.name.lower()

    @classmethod
    def parse(cls, text: str) -> Severity:
        """The severity named by `text` (case-insensitive: info, warning, error)."""
        return cls[text.upper()]


#: code -> (default severity, what it explains). Order is the README order.
CODES: dict[str, tuple[Severity, str]] = {
    "weight-update": (Severity.INFO, "fit's figure averages pre-update losses while weights change during the epoch"),
    "dropout": (Severity.INFO, "Dropout-family layers are active only in training"),
    "batchnorm-batch-stats": (
        Severity.WARNING,
        "BatchNormalization normalizes with batch statistics in training, moving statistics in inference",
    ),
    "noise-layer": (
        Severity.INFO,
        "GaussianNoise / GaussianDropout / AlphaDropout or another layer with a `training` behaviour",
    ),
    "interaction": (
        Severity.INFO,
        "training-mode layer families move the loss together by more than the sum of their separate effects",
    ),
    "regularization": (
        Severity.INFO,
        "penalties (`model.losses`) are part of Keras's total but not of a numpy recomputation",
    ),
    "class-weight": (Severity.INFO, "`class_weight` weights fit's loss only"),
    "sample-weight": (Severity.INFO, "how sample weights enter and normalize the loss"),
    "mask": (Severity.INFO, "masked elements are excluded and the mean is taken over unmasked ones, per batch"),
    "partial-batch": (
        Severity.WARNING,
        "a smaller last batch changes a per-batch average (e.g. Keras's per-output loss logs)",
    ),
    "loss-rank": (
        Severity.ERROR,
        "a loss function returns the wrong rank (a scalar, or a tensor that lost the batch axis)",
    ),
    "batch-size-dependence": (
        Severity.WARNING,
        'the reported loss changes with batch size (e.g. `reduction="sum"`)',
    ),
    "channels-first-axis": (
        Severity.WARNING,
        "an element-wise loss averages over the last axis, which is not the feature axis",
    ),
    "from-logits-mismatch": (
        Severity.ERROR,
        "probabilities fed to a `from_logits=True` loss, or logits to a `from_logits=False` one",
    ),
    "logits-shortcut": (
        Severity.INFO,
        "TensorFlow computes crossentropy from the cached logits; numpy on `predict()` clips at epsilon",
    ),
    "probability-clipping": (Severity.INFO, "crossentropy clips probabilities to [eps, 1-eps]"),
    "label-smoothing": (Severity.INFO, "smoothed targets put a floor under the loss"),
    "mixed-precision": (Severity.INFO, "the loss was computed in float16/bfloat16"),
    "legacy-keras": (Severity.INFO, "the file was saved by tf.keras 2.x, whose loss semantics differ where noted"),
    "custom-step": (
        Severity.INFO,
        "the model overrides train_step / test_step / compute_loss / compute_metrics or has no compiled loss: which "
        "figures run its own code, and which are left out",
    ),
    "non-finite": (Severity.ERROR, "NaN or Inf in inputs, outputs or loss, with where"),
    "class-dilution": (Severity.WARNING, "a class the model gets wrong contributes little to the mean loss"),
    "unexplained": (Severity.ERROR, "a gap above `--rtol` that no cause accounts for, with its size"),
    "generalization-gap": (
        Severity.INFO,
        "the same weights give a different loss on the training and the validation data (`evaluate` vs `evaluate_val`)",
    ),
    "history-mismatch": (
        Severity.WARNING,
        "no epoch of the `--history` file logged the loss these weights give, with the likely reason",
    ),
    "shuffled-data": (
        Severity.INFO,
        "the data pipeline gives a different order on each pass, so the figures average differently composed batches",
    ),
    "metric-vs-loss": (
        Severity.INFO,
        "a metric with the loss's name differs from the loss (penalties, sample weights, loss weights, masks)",
    ),
    "metric-batch-mean": (
        Severity.INFO,
        "a metric function returns one value per batch: Keras averages batch values, not the dataset value",
    ),
    "metric-threshold": (
        Severity.WARNING,
        "a metric's threshold does not fit the output's range (0.5 on logits or tanh values, 0.0 on probabilities)",
    ),
    "metric-class-ids": (
        Severity.WARNING,
        "a metric that reads class ids (IoU, MeanIoU) is given probabilities or scores, which it truncates to integers",
    ),
    "target-shape": (
        Severity.INFO,
        "targets Keras reshapes or broadcasts: (n,) vs (n, 1) in numpy, class indices vs one-hot outputs",
    ),
    "target-range": (
        Severity.WARNING,
        "targets outside the loss's domain ([0, 1], non-negative, rows summing to 1)",
    ),
    "backend-difference": (
        Severity.INFO,
        "`evaluate` differs on another Keras backend (`--parity backends`): logits shortcut, add_loss, op numerics",
    ),
    "xla-difference": (Severity.INFO, "`evaluate` differs with `jit_compile` on and off (`--parity jit`)"),
    "precision-difference": (
        Severity.INFO,
        "`evaluate` of the mixed-precision model differs from a float32 copy (`--parity float32`)",
    ),
    "distribution-scaling": (
        Severity.WARNING,
        "under `--distribute` the loss differs from one device: a custom loss divides by a batch size itself",
    ),
}


#: What a finding's magnitude is, per code: "gap" (a difference of two losses, in loss units),
#: "ratio" (one quantity over another), "count" (how many of something) or "floor" (a lower bound of
#: the loss); None for codes that never carry a magnitude.
MAGNITUDE_KINDS: dict[str, str | None] = {
    "weight-update": "gap",
    "dropout": "gap",
    "batchnorm-batch-stats": "gap",
    "noise-layer": "gap",
    "interaction": "gap",
    "regularization": "gap",
    "class-weight": "gap",
    "sample-weight": "gap",
    "mask": "gap",
    "partial-batch": "gap",
    "loss-rank": "ratio",
    "batch-size-dependence": "ratio",
    "channels-first-axis": None,
    "from-logits-mismatch": "gap",
    "logits-shortcut": "gap",
    "probability-clipping": "gap",
    "label-smoothing": "floor",
    "mixed-precision": "gap",
    "legacy-keras": None,
    "custom-step": None,
    "non-finite": "count",
    "class-dilution": "ratio",
    "unexplained": "gap",
    "generalization-gap": "gap",
    "history-mismatch": None,
    "shuffled-data": None,
    "metric-vs-loss": "gap",
    "metric-batch-mean": "gap",
    "metric-threshold": "gap",
    "metric-class-ids": "gap",
    "target-shape": "gap",
    "target-range": "count",
    "backend-difference": "gap",
    "xla-difference": "gap",
    "precision-difference": "gap",
    "distribution-scaling": "gap",
}


@dataclass(frozen=True)
class Finding:
    """One explained (or unexplained) cause, with its measured size. Frozen: a rule makes it whole.

    `between` names the two figures whose difference (a - b) is `magnitude` exactly, or is None when
    the magnitude is not such a difference (a remainder, a count, a ratio). `unit` is what a count
    counts (singular noun, e.g. "value"); the kind comes from MAGNITUDE_KINDS."""

    code: str
    message: str
    magnitude: float | None = None
    subject: str | None = None
    between: tuple[str, str] | None = None
    advice: str = ""
    severity: Severity | None = None
    unit: str | None = None
    uncertainty: float | None = None  # spread (std) of the magnitude over random draws, when measured

    def __post_init__(self) -> None:
        if self.code not in CODES:
            raise ValueError(f"unknown finding code {self.code!r}")
        if self.severity is None:
            object.__setattr__(self, "severity", CODES[self.code][0])

    @property
    def magnitude_kind(self) -> str | None:
        """gap / ratio / count / floor, or None when there is no magnitude."""
        return None if self.magnitude is None else MAGNITUDE_KINDS.get(self.code)

    def to_json(self) -> dict[str, Any]:
        """The finding as the report's JSON object (schema: $defs.finding)."""
        out = {
            "code": self.code,
            "severity": str(self.severity),
            "message": self.message,
            "magnitude": self.magnitude,
            "magnitude_kind": self.magnitude_kind,
            "subject": self.subject,
            "between": list(self.between) if self.between else None,
            "advice": self.advice,
        }
        if self.uncertainty is not None:
            out["uncertainty"] = self.uncertainty
        return out


@dataclass
class Figure:
    """One loss figure: its value and what it is."""

    value: float
    description: str
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """The figure as the report's JSON object: value, description and any extra keys."""
        return {"value": self.value, "description": self.description, **self.extra}


#: Figure order in every report.
FIGURE_ORDER = (
    "fit_logged",
    "fit_epoch",
    "train_mode_class_weighted",
    "train_mode",
    *(family_figure(family) for family in FAMILIES),
    "evaluate_probe_subset",
    "evaluate",
    "evaluate_float32",
    "manual",
    "regularization",
    "val_loss_logged",
)


@dataclass
class Report:
    """Everything a renderer needs. `header` holds model/data/version info; `sections` holds
    command-specific extras (breakdown rows, reduction traces, decomposition)."""

    command: str
    header: dict[str, Any]
    figures: dict[str, Figure] = field(default_factory=dict)
    findings: list[Finding] = field(default_factory=list)
    sections: dict[str, Any] = field(default_factory=dict)
    #: the exit-code policy the CLI or the Python API judged this report by (Gate.apply sets it)
    gate: Gate = field(default_factory=Gate)

    @property
    def fail_on(self) -> str:
        """The gate's --fail-on severity (error, warning, info or never)."""
        return self.gate.fail_on

    @property
    def max_gap(self) -> float | None:
        """The gate's --max-gap bound on relative gaps, or None."""
        return self.gate.max_gap

    def ordered_figures(self) -> list[tuple[str, Figure]]:
        """(name, figure) pairs in FIGURE_ORDER, then any other figures in insertion order."""
        known = [(k, self.figures[k]) for k in FIGURE_ORDER if k in self.figures]
        rest = [(k, v) for k, v in self.figures.items() if k not in FIGURE_ORDER]
        return known + rest

    def gap_breaches(self) -> list[tuple[str, float]]:
        """--max-gap: the figures (fit_epoch, train_mode) whose relative difference from evaluate is
        above the gate's bound, with that difference (see Gate.breaches)."""
        return self.gate.breaches(self.figures)

    def gap_exceeded(self) -> bool:
        """True when some figure breaches the gate's --max-gap."""
        return bool(self.gap_breaches())

    def failing_findings(self) -> list[Finding]:
        """The findings at or above the gate's --fail-on (none with `never`)."""
        return self.gate.failing(self.findings)

    @property
    def exit_code(self) -> ExitCode:
        """0: nothing at or above fail_on and no max_gap breach; 1 otherwise. (2 is the CLI's, for
        errors: a Report never carries it.) An int that may also be called: `report.exit_code` and
        `report.exit_code()` are the same number, under the report's own gate;
        `report.exit_code(gate)` is the code under `gate` (pure: findings, figures and gate only)."""
        return ExitCode(self.gate.exit_code(self.findings, self.figures), self)

    # -- the Python API's views ------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """Exactly the `--format json` report, as a dict."""
        from losscheck.report.json import report_dict

        return report_dict(self)

    def to_json(self) -> str:
        """Exactly the `--format json` report, as a string."""
        from losscheck.report.json import render_json

        return render_json(self)

    def to_markdown(self) -> str:
        """Exactly the `--format markdown` report."""
        from losscheck.report import render

        return render(self, "markdown")

    def to_table(self, width: int = 100, color: bool = False) -> str:
        """The `--format table` report as plain text (ANSI colours when `color`), `width` columns wide."""
        from losscheck.report import render

        return render(self, "table", width=width, color=color)

    def __str__(self) -> str:
        """The table, as `print(report)` shows it: `to_table()`, 100 columns, no colour."""
        return self.to_table()

    def __rich__(self) -> Any:
        from rich.console import Group

        from losscheck.report import for_display
        from losscheck.report.table import build_renderables

        return Group(*build_renderables(for_display(self)))

    def _repr_html_(self) -> str:
        from losscheck.report.html import render_html

        return render_html(self)

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, str]:
        """What Jupyter shows: the HTML report, the markdown report and the table as plain text
        (only the types in `include`, none in `exclude`, when given)."""
        renderers = {"text/html": self._repr_html_, "text/markdown": self.to_markdown, "text/plain": self.to_table}
        return {mime: render() for mime, render in renderers.items()
                if (not include or mime in include) and (not exclude or mime not in exclude)}


class ExitCode(int):
    """An exit code (0 or 1) that is also callable: with no argument it returns itself, with a Gate
    the code its report gets under that gate."""

    _report: Report | None

    def __new__(cls, value: int, report: Report | None = None) -> ExitCode:
        out = super().__new__(cls, value)
        out._report = report
        return out

    def __call__(self, gate: Gate | None = None) -> int:
        if gate is None or self._report is None:
            return int(self)
        return gate.exit_code(self._report.findings, self._report.figures)


def relative_gap(a: float, b: float) -> float:
    """|a - b| / max(|b|, tiny)."""
    return abs(a - b) / max(abs(b), 1e-12)
