"""The inference pass and the training-mode passes as one compiled pass: each batch runs the inference
step and then every training-mode variant in one traced step, with the layer calls memoized across
both, so a variant that holds the layers below its own in inference behaviour (Dropout only, with
BatchNormalization held at inference) reuses the inference pass's forward pass instead of computing it
again. Both give exactly the figures of their separate passes (the same batches, the same ops, the
variants' seeds drawn as in a pass of their own); the training-mode figures are kept on the Prober for
the `training_passes_weighted` call that asks for them."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from losscheck.loading.steps import adds_losses
from losscheck.probes.compiled import backend, compile_step

if TYPE_CHECKING:
    from losscheck.probes.inference import BatchResult, InferenceResult
    from losscheck.probes.prober import Prober


def joint_applies(prober: Prober, limit: int | None = None) -> bool:
    """Whether the two passes can run as one: on TensorFlow or JAX (the backends it is checked on),
    Keras's own steps, no layer adding losses in its call (a memoized call would not add them again), no
    state a call carries from batch to batch besides seeds and BatchNormalization statistics (each pass
    carries it on its own) and, with a sample `limit`, the sample made of whole batches of the inference
    pass."""
    from losscheck.probes.training import carried_state

    loop = prober.loaded.loop
    if backend() not in ("tensorflow", "jax"):
        return False
    if limit is not None and (prober.data.pipeline or limit % prober.batch_size):
        return False
    return (not loop.customized and loop.training_mode_comparable and not adds_losses(prober.model)
            and not carried_state(prober.model))


def joint_key(families: Sequence[str | None], class_weight, limit: int | None = None) -> tuple:
    """The key the training-mode figures of a joint pass are kept under (the first draw)."""
    return tuple(dict.fromkeys(families)), tuple(sorted((class_weight or {}).items())), limit


def inference_and_variants(prober: Prober, observers: Sequence[Callable[[BatchResult], None]], metrics: bool,
                           families: list[str | None], class_weight, limit: int | None = None) -> InferenceResult:
    """Prober.inference_pass plus Prober.training_passes_weighted(families, class_weight, limit) from one
    compiled pass (the variants on the batches of the first `limit` samples, all when None); the
    latter's figures and per-batch losses are kept in prober.joint. A second call on the same prober
    runs the step compiled by the first (no second trace)."""
    from losscheck.probes.inference import inference_pass
    from losscheck.probes.training import variant_setup

    key = joint_key(families, class_weight, limit)
    # the step compiled by an earlier call on this prober (without metrics: a metrics step is built per pass)
    kept = None if metrics else prober.compiled.get(("joint", key))
    with variant_setup(prober, families, class_weight, 0, reset=False,
                       calls=None if kept is None else kept[0]) as setup:
        setup.compiled = None if kept is None else kept[1]
        setup.build = joint_step
        result = inference_pass(prober, observers, metrics, joint=setup, class_weight=class_weight,
                                joint_limit=limit)
    if not metrics and setup.compiled is not None:
        prober.compiled[("joint", key)] = (setup.calls, setup.compiled)
    plain, weighted = setup.finish()
    prober.joint[key] = (plain, weighted, list(setup.batches))
    return result


def joint_step(prober: Prober, sample, with_weights: bool, compile_metrics: Any, setup: Any) -> Callable:
    """The compiled step of the joint pass: (the inference step's result tuple, the variants' stacked
    batch losses) of one batch, called as step(x, y, sw, cw) (sw, cw None when absent). The inference step
    runs first with no layer forced; then the variants, sharing its memoized layer calls."""
    from losscheck.probes.steps import _signature, inference_fn

    fn, variables, traced = inference_fn(prober, sample, compile_metrics)
    calls, variants_step = setup.calls, setup.step

    def both(x, y, sw, cw):
        calls.reset()
        calls.force([])
        inference = fn(x, y, sw)
        return inference, variants_step(x, y, sw, cw)

    all_vars = list({id(v): v for v in [*variables, *setup.variables]}.values())  # each once, in order
    sig = _signature(sample, with_weights)
    weighted = setup.weighted
    if sig is not None and weighted:
        import tensorflow as tf

        sig = sig + [tf.TensorSpec((None,), tf.float32)]
    if with_weights and weighted:
        compiled = compile_step(lambda x, y, sw, cw: both(x, y, sw, cw), all_vars, sig)
    elif with_weights:
        compiled = compile_step(lambda x, y, sw: both(x, y, sw, None), all_vars, sig)
    elif weighted:
        compiled = compile_step(lambda x, y, cw: both(x, y, None, cw), all_vars, sig)
    else:
        compiled = compile_step(lambda x, y: both(x, y, None, None), all_vars, sig)
    n_outputs = len(prober.outputs)

    def step(x, y, sw, cw):
        from losscheck.probes.steps import step_outputs

        args = [x, y] + ([sw] if with_weights else []) + ([cw] if weighted else [])
        inference, values = compiled(*args)
        return step_outputs(inference, traced, n_outputs), np.asarray(values)

    return step
