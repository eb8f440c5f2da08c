"""Independent numpy implementation of how Keras 3 turns predictions into the loss it reports.

Never imports keras or tensorflow. Per output and per batch:
  values = formula(y_true, y_pred)           # shape (B, ...) after the fn's own reduction over its axis
  L_o,b  = reduce(values, sample_weight, mask, reduction)   # see reduction.reduce_weighted
and for the model: L_b = sum_o lw_o * L_o,b; epoch value = sum_b n_b L_b / sum_b n_b.
"""

from losscheck.reference.reduction import EpochMean, output_batch_loss, reduce_weighted
from losscheck.reference.specs import LossSpec

__all__ = ["EpochMean", "LossSpec", "output_batch_loss", "reduce_weighted"]
