"""Measurements of training itself: the first training step that turned non-finite, taken apart."""

from __future__ import annotations

from dataclasses import dataclass

#: the parts of a training step, in the order a step computes them
WHERE = ("input", "forward", "loss", "gradient", "update")


@dataclass(frozen=True)
class TrainingNonFinite:
    """The first non-finite training step of the fit probe or of the callback's watched fit.

    epoch, step: counted from 1, as Keras's progress bar shows them; samples: (first, last) row index of
    the step's batch, None where they cannot be named. not_taken_apart: why the step was not taken apart
    (where is then None), else None. where: the first part of the step that is not finite (WHERE), or None when the
    replayed step was finite in every part; layer: the first layer whose output is not finite, in call
    order (where "forward"); variable: the first variable whose gradient or updated value is not finite
    (where "gradient" / "update"). last_finite_loss: the training-mode loss of the step before, at its
    weights (None for the first step); gradient_norms: (variable, norm) of that step's largest gradients."""

    epoch: int
    step: int
    samples: tuple[int, int] | None
    where: str | None
    layer: str | None = None
    variable: str | None = None
    last_finite_loss: float | None = None
    gradient_norms: tuple[tuple[str, float], ...] = ()
    not_taken_apart: str | None = None

    def section(self) -> dict:
        """The JSON `training_nonfinite` section."""
        section = {"epoch": self.epoch, "step": self.step,
                   "samples": None if self.samples is None else list(self.samples), "where": self.where,
                   "layer": self.layer, "variable": self.variable, "last_finite_loss": self.last_finite_loss,
                   "gradient_norms": [{"variable": v, "norm": n} for v, n in self.gradient_norms]}
        if self.not_taken_apart is not None:
            section["not_taken_apart"] = self.not_taken_apart
        return section
