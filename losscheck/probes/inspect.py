"""`inspect`'s measuring step, without data: the loss configuration per output, the
training-dependent layers, the regularizers, and the loss-function measurements that need no data."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from losscheck.core.config import Config
from losscheck.core.taxonomy import LISTED_FAMILIES
from losscheck.measurements import InspectMeasurements, Measurements, frozen
from losscheck.probes.layers import REGULARIZER_ATTRS, regularized_layers


def measure_inspect(cfg: Config, loaded: Any, progress: Callable[[str], None]) -> Measurements:
    """The loss configuration, training-dependent layers and regularizers, and the model and
    loss-function records of the loaded model."""
    from losscheck.loading.legacy import model_facts
    from losscheck.probes.layers import LayerFamilies
    from losscheck.probes.lossfn import measure_static

    fam = LayerFamilies.of(loaded.model)
    progress("static loss checks")
    static = measure_static(loaded)
    measured = InspectMeasurements(
        loss_config=frozen(loss_config(static.outputs)),
        training_layers=frozen({k: fam.names(k) for k in LISTED_FAMILIES if k != "custom" or fam.custom}),
        regularized_layers=tuple(regularized_layers(loaded.model)),
        regularizers=frozen(regularizers(loaded.model)),
    )
    lossfn = static.measurements()
    return Measurements("inspect", rtol=cfg.rtol, model=model_facts(loaded), lossfn=lossfn, inspect=measured,
                        notes=(*loaded.notes, *lossfn.errors))


def _describe_regularizer(reg: Any) -> str:
    try:
        cfg = reg.get_config()
    except Exception:  # noqa: BLE001 - a custom regularizer without config: its class name is enough
        cfg = {}
    args = ", ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in cfg.items())
    return f"{type(reg).__name__}({args})"


def regularizers(model) -> list[dict[str, Any]]:
    """Every regularizer, where it sits, and whether Keras 3 counts it (frozen layers' weight penalties
    are dropped; activity regularizers always count)."""
    from losscheck.probes.layers import all_layers

    out = []
    for layer in all_layers(model):
        for attr in REGULARIZER_ATTRS:
            reg = getattr(layer, attr, None)
            if reg is None:
                continue
            counted = bool(layer.trainable) or attr == "activity_regularizer"
            out.append({"layer": layer.name, "attribute": attr.replace("_regularizer", ""),
                        "regularizer": _describe_regularizer(reg), "counted": counted})
    return out


def loss_config(outputs) -> dict[str, Any]:
    """output -> its loss, kind, reduction, options, weight, shape, final activation, feature axis
    (`outputs`: the OutputLoss list of losscheck.probes.lossfn)."""
    out: dict[str, Any] = {}
    for ol in outputs:
        opts = dict(getattr(ol.loss, "_fn_kwargs", None) or ol.spec.options or {})
        out[ol.name] = {
            "loss": ol.spec.label, "kind": ol.kind, "reduction": ol.spec.reduction,
            "options": {k: v for k, v in opts.items() if isinstance(v, (int, float, str, bool, type(None)))},
            "loss_weight": ol.weight, "output_shape": list(ol.facts.shape),
            "final_activation": ol.facts.activation,
            "feature_axis": ol.facts.channels_axis if ol.facts.channels_axis is not None else None,
        }
    return out
