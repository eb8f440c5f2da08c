"""Rules of the parity area (see losscheck.rules): evaluate and the one-epoch fit re-measured under another
backend, evaluate with jit_compile on and off, and in float32 instead of the model's mixed precision
(`--parity`)."""

from __future__ import annotations

from losscheck.core.finding import Finding
from losscheck.core.formatting import fmt
from losscheck.core.significance import scale_of, significant
from losscheck.measurements import Measurements
from losscheck.rules import rule

#: above this relative size a backend difference is more than float32 op numerics
NUMERICS_RTOL = 1e-3


@rule("backend-difference")
def backend_difference(m: Measurements) -> list[Finding]:
    """evaluate on another backend - evaluate here, per backend, when significant; the causes named
    are those that apply to this model (TensorFlow's logits shortcut, add_loss), else op numerics."""
    p = m.parity
    if p is None:
        return []
    scale = scale_of(p.evaluate)
    out = []
    for other, value in p.backends.items():
        delta = value - p.evaluate
        if not significant(delta, m.rtol, scale):
            continue
        causes = []
        if p.logits_shortcut and "tensorflow" in (other, p.backend):
            causes.append("TensorFlow's crossentropy computes the loss from the softmax/sigmoid's logits (the "
                          "logits shortcut), while the other backends clip the probabilities at epsilon")
        if p.add_loss:
            causes.append("the model adds losses in call() (add_loss), which each backend's trainer collects "
                          "in its own way")
        if not causes or abs(delta) <= NUMERICS_RTOL * scale:
            causes.append("op numerics (each backend's kernels round float32 differently)")
        message = (f"evaluate on {other} is {fmt(value)}, on {p.backend} {fmt(p.evaluate)} ({delta:+.6g}, "
                   f"{abs(delta) / scale:.3%}); likely cause: " + "; ".join(causes) + ".")
        advice = ("Compare losses measured on the same backend; for crossentropy on a softmax/sigmoid output, "
                  "output logits and use from_logits=True, which every backend computes the same way."
                  if p.logits_shortcut else "Compare losses measured on the same backend.")
        out.append(Finding("backend-difference", message, magnitude=delta, subject=other,
                           between=(f"evaluate_{other}", "evaluate"), advice=advice))
    return out


@rule("backend-difference", continued=True)
def backend_fit_difference(m: Measurements) -> list[Finding]:
    """fit_epoch on another backend - fit_epoch here, per backend, when significant: both fits start from
    the same saved weights and optimizer state with the same seed, so what differs is the training step;
    random layers are named first (each backend draws its own masks), then trainable BatchNormalization
    and the optimizer update."""
    p = m.parity
    if p is None or p.fit_epoch is None:
        return []
    scale = scale_of(p.fit_epoch)
    out = []
    for other, value in p.fits.items():
        delta = value - p.fit_epoch
        if not significant(delta, m.rtol, scale):
            continue
        causes = []
        if p.random_layers:
            causes.append(f"the random layers ({_names(p.random_layers)}) draw their masks from each backend's own "
                          "random number generator, so the two fits train on different masks even with the same "
                          "seed")
        if p.batchnorm:
            causes.append(f"BatchNormalization ({_names(p.batchnorm)}) normalizes with batch statistics and updates "
                          "its moving statistics (momentum) with each backend's kernels")
        causes.append("the optimizer update, whose float32 rounding differs per backend and carries over the "
                      "epoch's steps")
        evaluate_differs = other in p.backends and significant(p.backends[other] - p.evaluate, m.rtol,
                                                                scale_of(p.evaluate))
        also = " evaluate differs too (see above), so the forward pass already does." if evaluate_differs else ""
        message = (f"fit_epoch on {other} is {fmt(value)}, on {p.backend} {fmt(p.fit_epoch)} ({delta:+.6g}, "
                   f"{abs(delta) / scale:.3%}); both fits start from the same saved weights and optimizer state "
                   f"with the same seed, so the training step differs: likely cause: " + "; ".join(causes) + "."
                   + also)
        advice = ("Compare fits on the same backend; to compare training across backends, disable the random "
                  "layers (rate 0) or accept a difference of the size of their noise." if p.random_layers else
                  "Compare fits on the same backend; a large difference points at a numerically fragile step "
                  "(a large learning rate, a loss near overflow).")
        out.append(Finding("backend-difference", message, magnitude=delta, subject=other,
                           between=(f"fit_epoch_{other}", "fit_epoch"), advice=advice))
    return out


def _names(layers: tuple[str, ...]) -> str:
    return ", ".join(layers[:3]) + (f" and {len(layers) - 3} more" if len(layers) > 3 else "")


@rule("xla-difference")
def xla_difference(m: Measurements) -> list[Finding]:
    """evaluate_jit - evaluate_nojit, when significant."""
    p = m.parity
    if p is None or p.jit is None or p.nojit is None:
        return []
    delta = p.jit - p.nojit
    scale = scale_of(p.evaluate)
    if not significant(delta, m.rtol, scale):
        return []
    message = (f"evaluate with jit_compile=True (XLA) is {fmt(p.jit)}, with jit_compile=False {fmt(p.nojit)} "
               f"({delta:+.6g}, {abs(delta) / scale:.3%}): XLA fuses and reorders operations, so float32 "
               "results round differently.")
    return [Finding("xla-difference", message, magnitude=delta, subject=p.backend,
                    between=("evaluate_jit", "evaluate_nojit"),
                    advice="Compare figures computed with the same jit_compile setting; a large difference "
                           "points at a numerically fragile loss (log of a probability near 0, a large sum).")]


@rule("precision-difference")
def precision_difference(m: Measurements) -> list[Finding]:
    """evaluate (mixed precision) - evaluate_float32, when significant."""
    p = m.parity
    if p is None or p.float32 is None:
        return []
    delta = p.evaluate - p.float32
    scale = scale_of(p.evaluate)
    if not significant(delta, m.rtol, scale):
        return []
    dtypes = "/".join(p.low_precision) or "a lower precision"
    message = (f"evaluate computed in {dtypes} is {fmt(p.evaluate)}; a float32 copy of the model with the same "
               f"weights gives {fmt(p.float32)} ({delta:+.6g}, {abs(delta) / scale:.3%}).")
    return [Finding("precision-difference", message, magnitude=delta, subject=dtypes,
                    between=("evaluate", "evaluate_float32"),
                    advice="Keep the output layer and the loss in float32 (dtype='float32' on the last layer), "
                           "as the Keras mixed-precision guide recommends.")]


@rule("distribution-scaling")
def distribution_scaling(m: Measurements) -> list[Finding]:
    """Under --distribute: fit_epoch (distributed) - fit_epoch_one_device, and evaluate_distributed -
    evaluate, each when significant. Keras scales each replica's loss by 1/replicas and sums the
    gradients, which is the one-device gradient only for a loss that is a mean over the batch it is
    given; a loss that divides by a fixed (global) batch size or sums changes the update."""
    p = m.parity
    if p is None or p.distributed is None:
        return []
    scale = scale_of(p.evaluate)
    r = p.replicas
    out = []
    if p.fit_distributed is not None and p.fit_one_device is not None:
        delta = p.fit_distributed - p.fit_one_device
        if significant(delta, m.rtol, scale):
            if p.batchnorm:
                why = (f"BatchNormalization ({', '.join(p.batchnorm[:3])}) normalizes each replica's part of a "
                       "batch with that part's statistics, so fit computes other losses and gradients; or a custom "
                       "loss divides by a fixed (global) batch size or sums over the batch.")
            else:
                why = ("the loss's gradient depends on how the batch is split: a custom loss that divides by a "
                       "fixed (global) batch size or sums over the batch is scaled again by Keras across replicas.")
            message = (f"fit over {r} replica(s) reports {fmt(p.fit_distributed)}, the same fit on one device "
                       f"{fmt(p.fit_one_device)} ({delta:+.6g}): " + why)
            out.append(Finding("distribution-scaling", message, magnitude=delta, subject=f"{r} replicas",
                               between=("fit_epoch", "fit_epoch_one_device"), advice=_DIST_ADVICE))
    delta = p.distributed - p.evaluate
    if significant(delta, m.rtol, scale):
        message = (f"evaluate over {r} replica(s) is {fmt(p.distributed)}, on one device {fmt(p.evaluate)} "
                   f"({delta:+.6g}): the loss's value depends on how the batch is split across replicas.")
        out.append(Finding("distribution-scaling", message, magnitude=delta, subject=f"{r} replicas",
                           between=("evaluate_distributed", "evaluate"), advice=_DIST_ADVICE))
    return out


_DIST_ADVICE = ("Return per-sample losses (shape (batch,)) and let Keras reduce them, or divide by the batch size "
                "of the tensor you are given (ops.shape(y_true)[0]), never a fixed one.")


@rule("distribution-scaling", continued=True)
def multiprocess_scaling(m: Measurements) -> list[Finding]:
    """Under --distribute multi-process: fit_epoch_multiprocess - fit_epoch (one process), when significant."""
    mp = m.parity.multiprocess if m.parity is not None else None
    fit, one = m.figures.get("fit_epoch_multiprocess"), m.figures.get("fit_epoch")
    if mp is None or fit is None or one is None:
        return []
    delta = fit - one
    if not significant(delta, m.rtol, scale_of(m.figures.get("evaluate"))):
        return _per_worker_scaling(m, mp)
    message = (f"fit over {mp.processes} processes reports {fmt(fit)}, the same fit in one process {fmt(one)} "
               f"({delta:+.6g}): the loss's gradient depends on how the global batch of {mp.batch_size} is split "
               f"into per-process batches of {mp.batch_size // mp.processes}: a custom loss that divides by a fixed "
               "batch size or sums over the batch changes the update.")
    return [Finding("distribution-scaling", message, magnitude=delta, subject=f"{mp.processes} processes",
                    between=("fit_epoch_multiprocess", "fit_epoch"), advice=_DIST_ADVICE)]


def _per_worker_scaling(m: Measurements, mp) -> list[Finding]:
    """Keras over every process equals one process, but the loss changes with the batch it is given (the
    batch-size rerun): JAX computes it on the global batch; a strategy that computes it on each worker's
    own batch (TensorFlow's MultiWorkerMirroredStrategy, MirroredStrategy) would scale it."""
    probe = m.lossfn.batch_size if m.lossfn is not None else None
    if probe is None or not significant(probe.other_value - probe.value, m.rtol, scale_of(probe.value)):
        return []
    local = mp.batch_size // mp.processes
    message = (f"the loss depends on the batch it is given ({fmt(probe.value)} at batch {probe.batch_size}, "
               f"{fmt(probe.other_value)} at batch {probe.other_batch_size}; see batch-size-dependence): on "
               f"{mp.backend}, Keras computes it on the global batch of {mp.batch_size}, so fit over "
               f"{mp.processes} processes equals one process here; where each worker computes the loss on its own "
               f"batch of {local} (TensorFlow's MultiWorkerMirroredStrategy or MirroredStrategy, a custom training "
               "loop) the value changes and Keras's 1/replicas scaling applies on top, so the update differs.")
    return [Finding("distribution-scaling", message, magnitude=probe.other_value - probe.value,
                    subject=f"{mp.processes} processes", advice=_DIST_ADVICE)]


@rule("uneven-shards")
def uneven_shards(m: Measurements) -> list[Finding]:
    """Multi-process shards of unequal steps or batch sizes, judged before any pass: the magnitude is the
    number of samples the processes would not have in common (those of the extra steps)."""
    mp = m.parity.multiprocess if m.parity is not None else None
    if mp is None or mp.even or mp.mismatch:
        return []
    extra = mp.samples % mp.batch_size if mp.batch_size % mp.processes == 0 else mp.samples
    return [Finding("uneven-shards", f"{mp.uneven}; no pass was run.", magnitude=float(extra), unit="sample",
                    subject=f"{mp.processes} processes", advice=mp.todo[:1].upper() + mp.todo[1:] + ".")]


@rule("replica-aggregation")
def replica_aggregation(m: Measurements) -> list[Finding]:
    """evaluate_multiprocess - evaluate (one process), when significant; the message says whether the numpy
    recomputation from the shards' sums (manual_multiprocess) agrees with one process or with Keras."""
    mp = m.parity.multiprocess if m.parity is not None else None
    value, one = m.figures.get("evaluate_multiprocess"), m.figures.get("evaluate")
    if mp is None or value is None or one is None:
        return []
    delta = value - one
    if not significant(delta, m.rtol, scale_of(one)):
        return []
    sharded = m.figures.get("manual_multiprocess")
    regularization = m.figures.get("regularization", 0.0)
    if sharded is not None:
        combined = sharded + regularization
        agrees = "one process" if not significant(combined - one, m.rtol, scale_of(one)) else "neither"
        why = (f" The shards' own sums give {fmt(combined)} (manual_multiprocess + regularization), as "
               f"{agrees}: Keras's reduction across the processes, not your loss, makes the difference.")
    else:
        why = " Keras's reduction across the processes, not your loss, makes the difference."
    message = (f"Keras's evaluate over {mp.processes} processes reports {fmt(value)}, in one process "
               f"{fmt(one)} ({delta:+.6g}, {abs(delta) / scale_of(one):.3%})." + why)
    return [Finding("replica-aggregation", message, magnitude=delta, subject=f"{mp.processes} processes",
                    between=("evaluate_multiprocess", "evaluate"),
                    advice="Compare the one-process figure; report the difference with your Keras version and backend, "
                           "and aggregate metrics yourself from per-process sums (loss sum, weight sum) meanwhile.")]


@rule("worker-disagreement")
def worker_disagreement(m: Measurements) -> list[Finding]:
    """Processes that read different data (judged before any pass), or report a figure differently: the
    largest difference from process 0, per figure."""
    mp = m.parity.multiprocess if m.parity is not None else None
    if mp is None:
        return []
    if mp.mismatch:
        return [Finding("worker-disagreement", mp.mismatch[:1].upper() + mp.mismatch[1:] + "; no pass was run.",
                        subject=f"{mp.processes} processes",
                        advice="Start every process with the same model, DATA and options.")]
    out = []
    first = dict(mp.shards[0].figures) if mp.shards else {}
    for name, value in first.items():
        others = [(s.process, dict(s.figures).get(name)) for s in mp.shards[1:]]
        worst = max(((p, v) for p, v in others if v is not None), key=lambda pv: abs(pv[1] - value), default=None)
        if worst is None or not significant(worst[1] - value, m.rtol, scale_of(value)):
            continue
        message = (f"process {worst[0]} reports {name} = {fmt(worst[1])}, process 0 {fmt(value)} "
                   f"({worst[1] - value:+.6g}): the processes do not see the same model, data or options.")
        out.append(Finding("worker-disagreement", message, magnitude=worst[1] - value, subject=f"process {worst[0]}",
                           advice="Give every process the same model file, DATA file and options (compare the "
                                  "files' checksums on each host)."))
    return out
