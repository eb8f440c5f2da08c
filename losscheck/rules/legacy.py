"""Rules of the legacy area: a file saved by tf.keras 2.x, and which Keras 2/3 loss semantics differ
for the model (ModelFacts.keras2_differences, found statically by losscheck.loading.legacy)."""

from __future__ import annotations

from losscheck.core.finding import Finding
from losscheck.measurements import Measurements
from losscheck.measurements.model import ModelFacts
from losscheck.rules import rule


def legacy_message(facts: ModelFacts) -> tuple[str, str]:
    """(message, advice) of the legacy-keras finding."""
    head = (f"The file was saved by {facts.saved_by}; losscheck rebuilt its compile configuration "
            "(losses, loss weights, optimizer state) for Keras 3 from the file itself.")
    diffs = facts.keras2_differences
    if not diffs:
        return (head + " None of the known Keras 2/3 loss differences applies to this model: Keras 2 reported the "
                "same evaluate figure.", "Figures here are Keras 3's and match what tf.keras reported.")
    listed = "; ".join(f"({i}) {d}" for i, (d, _) in enumerate(diffs, 1))
    if not any(changes for _, changes in diffs):
        return (head + " Keras 2 reported the same evaluate figure; Keras 2 semantics that differ for this model "
                f"elsewhere: {listed}.",
                "The evaluate figure matches tf.keras; other logged numbers may differ as noted.")
    return (head + f" Keras 2 semantics that differ for this model: {listed}.",
            "Figures here are Keras 3's; numbers logged under tf.keras may differ as noted.")


@rule("legacy-keras")
def legacy_keras(m: Measurements) -> list[Finding]:
    """The file was saved by tf.keras 2.x: what losscheck rebuilt and which Keras 2 semantics differ."""
    if m.model is None or not m.model.legacy:
        return []
    message, advice = legacy_message(m.model)
    return [Finding("legacy-keras", message, advice=advice)]
