"""Rules of the parity area on hand-built Measurements (no TensorFlow): each code fires where its
difference is above --rtol and not where it is within it or was not measured."""

from __future__ import annotations

import pytest

from losscheck.measurements import Measurements, ParityMeasurements, frozen_mapping
from losscheck.measurements.lossfn import BatchSizeRecord, LossFnMeasurements
from losscheck.measurements.multiprocess import MultiProcessMeasurements, Shard
from losscheck.rules import RULES, load_rules
from losscheck.rules import parity as rules

load_rules()


def measured(**kw) -> Measurements:
    base = {"backend": "tensorflow", "evaluate": 2.0}
    base.update(kw)
    for key in ("backends", "backend_errors", "fits"):
        if key in base:
            base[key] = frozen_mapping(base[key])
    return Measurements("compare", rtol=1e-4, parity=ParityMeasurements(**base))


CASES = [
    # (code, measurements, fires, words in the message)
    ("backend-difference", measured(backends={"jax": 1.5}, logits_shortcut=True), True, ["logits shortcut"]),
    ("backend-difference", measured(backends={"jax": 2.0 + 1e-5}), False, []),
    ("backend-difference", measured(backends={"jax": 2.001}), True, ["op numerics"]),
    ("backend-difference", measured(backends={"torch": 2.5}, add_loss=True), True, ["add_loss"]),
    ("backend-difference", measured(backend="jax", backends={"torch": 2.5}, logits_shortcut=True), True,
     ["op numerics"]),
    ("backend-difference", measured(), False, []),
    # the one-epoch fit on another backend: the training step, random layers named first
    ("backend-difference", measured(backends={"jax": 2.0}, fit_epoch=1.5, fits={"jax": 1.6},
                                    random_layers=("head_dropout",)), True,
     ["fit_epoch on jax", "head_dropout", "masks", "optimizer update"]),
    ("backend-difference", measured(backends={"jax": 2.0}, fit_epoch=1.5, fits={"jax": 1.51}, batchnorm=("bn",)),
     True, ["BatchNormalization (bn)", "momentum", "optimizer update"]),
    ("backend-difference", measured(backends={"jax": 2.0}, fit_epoch=1.5, fits={"jax": 1.5 + 1e-6},
                                    random_layers=("drop",)), False, []),
    ("backend-difference", measured(fits={"jax": 1.6}), False, []),
    ("xla-difference", measured(jit=2.01, nojit=2.0), True, ["jit_compile=True", "XLA"]),
    ("xla-difference", measured(jit=2.0, nojit=2.0), False, []),
    ("xla-difference", measured(jit=2.01), False, []),
    ("precision-difference", measured(float32=1.9, low_precision=("float16",)), True, ["float16", "float32 copy"]),
    ("precision-difference", measured(float32=2.0 - 1e-6, low_precision=("bfloat16",)), False, []),
    ("precision-difference", measured(), False, []),
    ("distribution-scaling", measured(distributed=2.0, replicas=2, fit_distributed=1.8, fit_one_device=1.6), True,
     ["2 replica(s)", "fixed (global) batch size"]),
    ("distribution-scaling", measured(distributed=2.0, replicas=2, fit_distributed=1.8, fit_one_device=1.6,
                                      batchnorm=("bn",)), True, ["BatchNormalization (bn)", "each replica's part"]),
    ("distribution-scaling", measured(distributed=1.0, replicas=2), True, ["evaluate over 2 replica(s)"]),
    ("distribution-scaling", measured(distributed=2.0, replicas=2, fit_distributed=1.6, fit_one_device=1.6), False,
     []),
    ("distribution-scaling", measured(), False, []),
]


@pytest.mark.parametrize("code, m, fires, words", CASES)
def test_parity_rules(code, m, fires, words):
    found = RULES[code](m)
    assert bool(found) == fires
    for f in found:
        assert f.code == code and f.magnitude_kind == "gap"
        a, b = f.between
        values = {"evaluate": m.parity.evaluate, "evaluate_jit": m.parity.jit, "evaluate_nojit": m.parity.nojit,
                  "evaluate_float32": m.parity.float32, "evaluate_distributed": m.parity.distributed,
                  "fit_epoch": m.parity.fit_distributed if m.parity.fit_distributed is not None
                  else m.parity.fit_epoch, "fit_epoch_one_device": m.parity.fit_one_device,
                  **{f"evaluate_{k}": v for k, v in m.parity.backends.items()},
                  **{f"fit_epoch_{k}": v for k, v in m.parity.fits.items()}}
        assert f.magnitude == values[a] - values[b]
        for word in words:
            assert word in f.message


def test_a_fit_difference_says_evaluate_differs_too_when_it_does():
    (fit,) = rules.backend_fit_difference(measured(backends={"jax": 2.0}, fit_epoch=1.5, fits={"jax": 1.6}))
    assert "forward pass" not in fit.message and "random layers" not in fit.message
    found = RULES["backend-difference"](measured(backends={"jax": 2.5}, fit_epoch=1.5, fits={"jax": 1.6}))
    assert [f.between for f in found] == [("evaluate_jax", "evaluate"), ("fit_epoch_jax", "fit_epoch")]
    assert "forward pass already" in found[1].message


def test_no_parity_record_no_findings():
    m = Measurements("compare")
    assert rules.backend_difference(m) == rules.xla_difference(m) == rules.precision_difference(m) == []
    assert rules.distribution_scaling(m) == []


def _multi(figures=None, **kw) -> Measurements:
    base = {"processes": 2, "coordinator": "127.0.0.1:1", "backend": "jax", "samples": 96, "batch_size": 32,
            "shards": (Shard(0, 48, 3, 80.0, 48.0, (("evaluate", 2.0),)), Shard(1, 48, 3, 90.0, 48.0,
                                                                                (("evaluate", 2.0),)))}
    probe = kw.pop("probe", None)
    base.update(kw)
    lossfn = None
    if probe is not None:
        lossfn = LossFnMeasurements(batch_size=BatchSizeRecord(32, 16, probe[0], probe[1], frozen_mapping({})))
    mp = MultiProcessMeasurements(**base)
    figures = {"evaluate": 2.0, **(figures or {})}
    return Measurements("compare", rtol=1e-4, figures=frozen_mapping(figures), lossfn=lossfn,
                        parity=ParityMeasurements(backend="jax", evaluate=2.0, multiprocess=mp))


MULTI_CASES = [
    # (code, measurements, fires, words in the message)
    ("uneven-shards", _multi(samples=100, even=False, uneven="process 0 would wait", todo="use 96 samples"), True,
     ["process 0 would wait", "no pass was run"]),
    ("uneven-shards", _multi(), False, []),
    ("replica-aggregation", _multi({"evaluate_multiprocess": 2.5, "manual_multiprocess": 2.0, "regularization": 0.0}),
     True, ["over 2 processes", "as one process", "not your loss"]),
    ("replica-aggregation", _multi({"evaluate_multiprocess": 2.0 + 1e-6}), False, []),
    ("worker-disagreement", _multi(shards=(Shard(0, 48, 3, figures=(("evaluate", 2.0),)),
                                           Shard(1, 48, 3, figures=(("evaluate", 2.5),)))), True,
     ["process 1 reports evaluate"]),
    ("worker-disagreement", _multi(mismatch="the processes read different data (process 0: 96, process 1: 90)"), True,
     ["different data", "no pass was run"]),
    ("worker-disagreement", _multi(), False, []),
    ("distribution-scaling", _multi({"fit_epoch": 1.5, "fit_epoch_multiprocess": 1.8}), True,
     ["fit over 2 processes", "per-process batches of 16"]),
    ("distribution-scaling", _multi({"fit_epoch": 1.5, "fit_epoch_multiprocess": 1.5}, probe=(2.0, 1.0)), True,
     ["global batch of 32", "own batch of 16"]),
    ("distribution-scaling", _multi({"fit_epoch": 1.5, "fit_epoch_multiprocess": 1.5}, probe=(2.0, 2.0)), False, []),
]


@pytest.mark.parametrize("code, m, fires, words", MULTI_CASES)
def test_multiprocess_rules(code, m, fires, words):
    found = RULES[code](m)
    assert bool(found) == fires
    for f in found:
        assert f.code == code
        if f.between:
            a, b = f.between
            assert f.magnitude == m.figures[a] - m.figures[b]
        for word in words:
            assert word in f.message


def test_shards_section_in_the_json():
    from losscheck.report.measured import measured_sections

    (first, second) = measured_sections(_multi())["shards"]
    assert first == {"process": 0, "samples": 48, "steps": 3, "loss_sum": 80.0, "weight_sum": 48.0}
    assert second["process"] == 1
