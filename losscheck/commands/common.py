"""Pieces every command uses: the report header and the usage errors found right after loading (before
any pass). No TensorFlow import here (the model's facts come from loading/)."""

from __future__ import annotations

from typing import Any

from losscheck import __version__
from losscheck.core.config import Config
from losscheck.core.errors import UsageError


def build_header(cfg: Config, loaded: Any, data: Any = None, val: Any = None,
                 split_at: int | None = None) -> dict[str, Any]:
    """The report header: versions, the model (path, format, outputs, losses) and the data (with the
    validation data `val`, cut from DATA at `split_at` by --validation-split or loaded on its own)."""
    from losscheck.loading.inputs import keras_facts

    header: dict[str, Any] = {
        "losscheck_version": __version__,
        **keras_facts(),
        "model": {
            "path": str(cfg.model_path),
            "format": loaded.info.format,
            "saved_by": loaded.info.saved_by,
            "outputs": list(loaded.output_names),
            "losses": loaded.loss_labels(),
            "loss_weights": {o: w for o, w in loaded.loss_weights.items() if loaded.losses.get(o) is not None},
        },
    }
    if data is not None:
        # a pipeline batches itself: its own batch size is the one every figure used
        batch_size = data.batch_size if data.pipeline else cfg.batch_size
        header["data"] = {"path": str(cfg.data_path), "samples": data.n, "batch_size": batch_size}
    if val is not None:
        header["data"]["validation"] = (
            {"path": str(cfg.data_path), "samples": val.n, "validation_split": cfg.validation_split,
             "split_at": split_at} if split_at is not None
            else {"path": str(getattr(val, "path", cfg.val_path)), "samples": val.n})
    return header


def check_loaded(cfg: Config, loaded: Any, data: Any) -> None:
    """The usage errors that need the loaded model and data but no pass, raised before any pass runs:
    --class-weight on a multi-output model, with a Python generator, or beside sample weights in the data
    (fit refuses all three)."""
    if not cfg.class_weight:
        return
    if len([o for o in loaded.output_names if loaded.losses.get(o) is not None]) > 1:
        raise UsageError("--class-weight is not supported for multi-output models (Keras raises "
                         "ValueError for that too); use per-output sample weights")
    if data is not None and data.generator:
        raise UsageError("--class-weight is not supported with a Python generator (Keras raises ValueError for "
                         "that too); yield (x, y, sample_weight) batches instead")
    if data is not None and getattr(data, "sample_weight", None) is not None:
        raise UsageError("--class-weight cannot be combined with sample_weight in the data file "
                         "(Keras raises ValueError for that too); drop one of them")
