"""Rules of the model's own training loop: which training-loop methods the model overrides, or that its
loss lives only in add_loss or its own steps (LoopMeasurements), and what compare did about it."""

from __future__ import annotations

from losscheck.core.finding import Finding
from losscheck.measurements import Measurements
from losscheck.rules import rule


def _listed(names: list[str]) -> str:
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


@rule("custom-step")
def custom_step(m: Measurements) -> list[Finding]:
    """The model's own train_step/test_step/compute_loss/compute_metrics, or a loss outside compile():
    the figures measured through that code and those left out, with why."""
    loop = m.loop
    if loop is None:
        return []
    if loop.steps:
        head = f"The model overrides {_listed(list(loop.steps))}"
        if not loop.compiled_loss:
            head += " and is compiled without a loss"
    else:
        head = "The model is compiled without a loss: its loss comes only from add_loss"
    fig = m.figures
    measured = [name for name in ("evaluate", "fit_epoch") if name in fig]
    parts = [head + "."]
    if measured:
        parts.append(f"{_listed(measured)} {'is' if len(measured) == 1 else 'are'} what Keras itself reports for it "
                     "(model.evaluate / model.fit run the model's own steps).")
    if loop.own_figures:
        parts.append(f"Its own logged losses are figures too: {_listed(list(loop.own_figures))}.")
    if "train_mode" in fig and "compute_loss" in loop.steps:
        parts.append("The training-mode figures go through its own compute_loss.")
    left = []
    if not loop.evaluated:
        left.append("evaluate (Keras's own evaluate gives no loss for this model; see the notes)")
    if not loop.training_mode:
        why = ("its test_step computes evaluate's loss, which a training-mode pass of compute_loss would not "
               "reproduce" if "test_step" in loop.steps else "Keras's compute_loss has no loss to compute")
        left.append(f"the training-mode figures ({why})")
    if not loop.manual:
        why = ("there is no compiled loss to recompute" if not loop.compiled_loss
               else f"its own {_listed([s for s in loop.steps if s in ('test_step', 'compute_loss')])} replaces the "
                    "compiled loss that losscheck recomputes")
        left.append(f"manual and regularization, and the sample-weight check ({why})")
    if not loop.decomposed and "fit_epoch" in fig and "evaluate" in fig:
        gap = fig["fit_epoch"] - fig["evaluate"]
        left.append(f"the split of fit_epoch - evaluate ({gap:+.6g}) into causes: fit and evaluate run the model's own "
                    f"{_listed([s for s in loop.steps if s in ('train_step', 'test_step')])}, so the gap may come from "
                    "that code as much as from layers or weight updates")
    if left:
        parts.append("Not measured because of it: " + "; ".join(left) + ".")
    return [Finding("custom-step", " ".join(parts),
                    advice="Figures computed by the model's own code are as faithful as that code; compare fit's and "
                           "evaluate's logs with the same step to see where they differ.")]
