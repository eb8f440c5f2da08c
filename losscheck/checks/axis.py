"""`channels-first-axis`: an element-wise loss reduces over axis -1, but the output keeps its features on
another axis (channels-first convolutions, a Permute, a BatchNormalization over axis 1, or a shape that
looks channels-first). The total is still a mean over all elements for mean-type losses; what goes
wrong is anything written against axis -1 (weights, masks, per-feature reporting) and, for
crossentropies, the class axis itself."""

from __future__ import annotations

from losscheck.checks.common import CROSSENTROPY_KINDS, OutputLoss
from losscheck.checks.graph import shape_text
from losscheck.findings import Finding
from losscheck.reference.specs import ELEMENTWISE_LAST_AXIS_MEAN

AXIS_KINDS = ELEMENTWISE_LAST_AXIS_MEAN | CROSSENTROPY_KINDS | {"kl_divergence", "cosine_similarity",
                                                                 "categorical_hinge"}


def feature_axis_mismatch(ol: OutputLoss) -> int | None:
    """The channels axis when the loss reduces over a different (last) one; None when all is well."""
    f = ol.facts
    rank = len(f.shape)
    if rank < 3 or ol.kind not in AXIS_KINDS or f.channels_axis is None:
        return None
    loss_axis = ol.option("axis", -1)
    if not isinstance(loss_axis, int):
        return None
    if loss_axis % rank == f.channels_axis % rank or f.channels_axis % rank == rank - 1:
        return None
    return f.channels_axis


def check(ol: OutputLoss) -> list[Finding]:
    axis = feature_axis_mismatch(ol)
    if axis is None:
        return []
    f = ol.facts
    rank = len(f.shape)
    last = f.shape[-1]
    n_feat = f.shape[axis]
    reduced = shape_text(tuple(d for i, d in enumerate(f.shape) if i != rank - 1))
    if ol.kind in ELEMENTWISE_LAST_AXIS_MEAN:
        op = "averages over axis -1"
        effect = ("Numerically the total is still the mean over all elements, but per-feature weights, masks or "
                  "sample weights shaped against axis -1 land on a spatial axis.")
    else:
        op = "sums/normalizes over axis -1 as the class axis"
        effect = "The class axis is wrong: the loss treats spatial positions as classes."
    msg = (f"Output {f.name!r} has shape {shape_text(f.shape)} with its {n_feat} features on axis {axis} "
           f"({f.channels_reason}); {ol.spec.label} {op} ({last} values along a spatial axis), giving values "
           f"of shape {reduced}. {effect}")
    advice = (f"Move the features last (channels_last, or keras.layers.Permute before the loss) or pass axis={axis} "
              "to a loss that takes it; see the reduction trace.")
    return [Finding("channels-first-axis", msg, magnitude=None, subject=f.name, advice=advice)]
