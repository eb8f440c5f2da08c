"""Rules of training itself: the first non-finite step of the fit probe (TrainingNonFinite)."""

from __future__ import annotations

from losscheck.core.finding import Finding
from losscheck.measurements import Measurements
from losscheck.rules import rule

#: a training loss above this the step before the non-finite one means training diverged on the way there
DIVERGED = 1e10

#: where -> (what went non-finite, the usual causes, advice)
_CAUSES = {
    "input": ("the batch itself holds NaN or Inf values",
              "bad samples in that batch (missing values, a division by zero in preprocessing)",
              "Inspect and clean those samples (np.isfinite) before training."),
    "forward": ("the output of layer {layer} is not finite although the batch is",
                "weights that grew too large over the previous updates (a learning rate too high, exploding "
                "gradients), a float16 overflow (values above 65504) without loss scaling, or exp/log/division in "
                "a custom layer",
                "Lower the learning rate or clip gradients (clipnorm=1.0); with float16 use the mixed_float16 "
                "policy (Keras scales the loss); guard custom layers against overflow."),
    "loss": ("the loss of finite outputs is not finite",
             "a log or a division of zero in a custom loss (e.g. log(0) on some samples), targets the loss "
             "cannot take, or outputs so large that the loss overflows float32 (weights grown by a learning rate "
             "too high)",
             "Clip the predictions inside the loss (e.g. log(clip(p, eps, 1))) or use a built-in loss with "
             "from_logits=True."),
    "gradient": ("the gradient of {variable} is not finite although the loss is",
                 "sqrt, log or a division at 0 in the loss or a layer (its derivative is infinite there), or a "
                 "float16 overflow in the backward pass",
                 "Add an epsilon inside sqrt/log/division, or use the mixed_float16 policy for loss scaling."),
    "update": ("the optimizer's update made {variable} non-finite although its gradient is finite",
               "a learning rate too high or exploding gradients (see the largest gradient norms)",
               "Lower the learning rate or clip gradients (clipnorm / global_clipnorm)."),
}


@rule("nonfinite-in-training")
def nonfinite_in_training(m: Measurements) -> list[Finding]:
    """The fit probe's first non-finite step: when, on which samples, where in the step, and why."""
    t = m.training
    if t is None:
        return []
    head = f"Training turned non-finite at epoch {t.epoch}, step {t.step}"
    if t.samples is not None:
        head += f" (samples {t.samples[0]}..{t.samples[1]})"
    if t.not_taken_apart is not None:
        return [Finding("nonfinite-in-training", f"{head}; that step is not taken apart: {t.not_taken_apart}.",
                        advice="Run losscheck compare --fit-epochs N on the saved model and data (or fit with "
                               "shuffle=False) to have it taken apart.")]
    if t.where is None:
        return [Finding("nonfinite-in-training", head + "; replayed, every part of that step was finite (the run "
                        "is not deterministic).",
                        advice="Run fit with TerminateOnNaN and a fixed seed to reproduce it.")]
    what, causes, advice = _CAUSES[t.where]
    msg = f"{head}: {what.format(layer=t.layer or '?', variable=t.variable or '?')} (where: {t.where})."
    if t.last_finite_loss is not None:
        msg += f" The step before had a training loss of {t.last_finite_loss:.6g}"
        if t.gradient_norms:
            msg += "; its largest gradient norms: " + ", ".join(f"{v} {n:.3g}" for v, n in t.gradient_norms)
        msg += "."
    diverged = t.last_finite_loss is not None and abs(t.last_finite_loss) > DIVERGED
    if diverged:
        msg += " The loss had already grown that large: training diverged before this step."
        advice = "Lower the learning rate (or clip gradients: clipnorm=1.0); " + advice[0].lower() + advice[1:]
    msg += f" Usual causes: {causes}."
    return [Finding("nonfinite-in-training", msg, subject=t.layer or t.variable, advice=advice)]
