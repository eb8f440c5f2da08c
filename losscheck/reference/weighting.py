"""Losses normalized by their sample weights (numpy only): what reduction="mean_with_sample_weight"
reports, against which the sample-weight finding compares Keras's figure."""

from __future__ import annotations

import numpy as np

from losscheck.reference.reduction import loss_values_and_mask, match_rank, merge_masks


def weight_normalized(spec, y, pred, w: np.ndarray, mask, logits, values) -> float:
    """sum(w*l*m) / sum(w*m) over one output's per-element losses l on one batch (0 when the weights
    of the unmasked elements sum to 0). A loss that already returns one scalar per batch has no
    elements to weight: its value is returned as it is."""
    if values is None:
        values, own = loss_values_and_mask(spec, y, pred, logits)
        mask = merge_masks(mask, own)
    v = np.asarray(values, np.float64)
    if v.ndim == 0:
        return float(v)
    m = np.ones_like(v) if mask is None else match_rank(np.asarray(mask, np.float64), v)[0]
    v, ww = match_rank(v, np.asarray(w, np.float64))
    # weights of shape (B, T) squeeze values of shape (B, T, 1): a mask shaped like the values loses its 1 too
    if m.ndim > v.ndim and m.shape[-1] == 1:
        m = m[..., 0]
    ww = np.broadcast_to(ww, v.shape) * np.broadcast_to(m.reshape(m.shape + (1,) * (v.ndim - m.ndim)), v.shape)
    total = float(np.sum(ww))
    return float(np.sum(v * ww)) / total if total else 0.0
