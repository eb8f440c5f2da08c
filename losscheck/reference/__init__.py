"""Independent numpy implementation of how Keras 3 turns predictions into the loss it reports.

Never imports keras or tensorflow. Per output and per batch:
  values, own_mask = formula(y_true, y_pred)   # formulas.py: the fn's own reduction over its axis;
                                               # from the cached logits where Keras's TF backend uses
                                               # them (reduction.uses_logits)
  L_o,b  = reduce(values, sample_weight, mask & own_mask, reduction)   # reduction.reduce_weighted
and for the model: L_b = sum_o lw_o L_o,b; epoch value = sum_b n_b L_b / sum_b n_b (EpochMean).
variants.py measures, on the same batches, what a plain numpy mean on predict() output would give
instead (masks, weights, logits, clipping, mixed precision switched off one at a time).
"""

from losscheck.reference.reduction import EpochMean, output_batch_loss, prefix_mean, reduce_weighted
from losscheck.reference.specs import LossSpec

__all__ = ["EpochMean", "LossSpec", "output_batch_loss", "prefix_mean", "reduce_weighted"]
