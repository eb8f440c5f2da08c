"""The Prober: the passes that run the model on one loaded, compiled model and one dataset (the
inference pass, probes/inference.py; the training-mode passes and the inference loss,
probes/training.py; evaluate of a float32 copy, probes/precision.py). The one-epoch fit is
probes/fitting.py; other probes run the model for their own figures too.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from losscheck.core.errors import UsageError
from losscheck.loading.memory import assigned_back, call_state_variables
from losscheck.loading.source import DataSource
from losscheck.probes import inference, training
from losscheck.probes.batching import class_weight_sample_weights, data_batches
from losscheck.probes.data_errors import data_errors
from losscheck.probes.inference import BatchResult, InferenceResult
from losscheck.probes.layers import LayerFamilies
from losscheck.probes.precision import float32_copy, low_precision_layers
from losscheck.reference import LossSpec


class Prober:
    """Runs the passes on one loaded, compiled model and one dataset."""

    def __init__(self, loaded, data: DataSource, batch_size: int, seed: int = 0) -> None:
        self.loaded = loaded
        self.model = loaded.model
        self.data = data
        self.batch_size = batch_size
        self.seed = seed
        self.families = LayerFamilies.of(self.model)
        self.last_batches: list[tuple[int, dict]] = []
        self.specs: dict[str, LossSpec | None] = loaded.specs
        self.outputs = loaded.output_names
        # Keras's compute_loss has a loss to compute; else (the loss lives only in the model's own
        # train/test steps) the passes record a zero total and losscheck reports none of them as a loss
        self.keras_loss = loaded.loop.keras_loss
        # training-mode figures a joint pass measured (probes/joint.py): key -> (unweighted, weighted, batches)
        self.joint: dict[tuple, tuple] = {}
        self.compiled: dict[tuple, Any] = {}  # compiled steps kept for the next pass of the same kind

    # -- helpers -------------------------------------------------------------------------------
    def batches(self, limit: int | None = None, class_weight=None):
        """(start, stop, xs, ys, sample_weight) per batch; with class_weight, the sample weights fit
        derives from it."""
        for start, stop, xs, ys, sw in data_batches(self.data, self.batch_size, limit):
            yield start, stop, xs, ys, (self.class_weighted(ys, sw, class_weight) if class_weight else sw)

    @staticmethod
    def class_weighted(ys, sw, class_weight):
        """The sample weights fit derives from class_weight (Keras refuses both at once)."""
        if sw is not None:
            raise UsageError("--class-weight cannot be combined with sample_weight in the data file "
                             "(Keras raises ValueError for that too); drop one of them")
        return class_weight_sample_weights(ys[0], class_weight)

    def loss_fn(self, output: str):
        return self.loaded.losses.get(output)

    # -- inference -----------------------------------------------------------------------------
    @data_errors
    def inference_pass(self, observers: Sequence[Callable[[BatchResult], None]] = (),
                       metrics: bool = False, variants: list[str | None] | None = None,
                       class_weight=None, limit: int | None = None) -> InferenceResult:
        """evaluate (Keras's own compute_loss on the inference outputs), regularization, and the numpy
        reference `manual`, all from one compiled pass over the data. Also measures the variants the
        semantic findings explain (reference.variants). metrics=True: the compiled metrics too, as
        evaluate(return_dict=True) gives them (InferenceResult.metrics; the metric state is restored).
        State a call updates (stateful RNN states, a custom layer's variables) carries from batch to batch
        as in evaluate, from the saved values, and is put back afterwards. `variants`: the training-mode
        variants (with `class_weight`, on the first `limit` samples) a later `training_passes_weighted` will
        ask for;
        where the two passes can run as one (probes/joint.py) they do, and that call then returns what
        this pass measured."""
        from losscheck.probes.joint import inference_and_variants, joint_applies

        self.joint.clear()
        with assigned_back(call_state_variables(self.model)):
            if variants is not None and joint_applies(self, limit):
                return inference_and_variants(self, observers, metrics, variants, class_weight, limit)
            return inference.inference_pass(self, observers, metrics)

    # -- training-mode passes ------------------------------------------------------------------
    def training_pass(self, family: str | None, class_weight=None, limit: int | None = None) -> float:
        """The loss a fit step measures before its update, averaged over batches as Keras does.

        family None: model(x, training=True) (every layer in training behaviour);
        family "dropout"/"batchnorm"/"noise"/"custom": only that family forced to training, the rest
        inference; the layers of the other families are held at training=False even inside a forced
        layer (a custom block that passes `training` on to its Dropout and BatchNormalization is measured
        without them, a block with a dropout rate of its own without its BatchNormalization);
        "inference": no layer forced (what `inference_loss` gives).
        """
        return self.training_passes([family], class_weight, limit)[family]

    @data_errors
    def training_passes(self, families: list[str | None], class_weight=None, limit: int | None = None,
                        draw: int = 0) -> dict[str | None, float]:
        """Several training-mode figures (see `training_pass`) from ONE compiled pass over the data;
        the loss of every variant with `class_weight` applied when it is given."""
        plain, weighted = self.training_passes_weighted(families, class_weight, limit, draw)
        return weighted if class_weight else plain

    @data_errors
    def training_passes_weighted(self, families: list[str | None], class_weight=None, limit: int | None = None,
                                 draw: int = 0) -> tuple[dict[str | None, float], dict[str | None, float]]:
        """Several training-mode figures (see `training_pass`) from ONE compiled pass over the first
        `limit` samples (all when None), batched as fit batches them: (unweighted, class-weighted),
        each {variant: epoch mean}; the class-weighted dict is empty without `class_weight`. Both come
        from the same forward pass of a variant, so they differ only by the weights.

        Each batch runs every variant in one traced step. Layer calls are memoized within the trace
        (same layer, same input tensors, same effective `training`, same forced layers below it), so
        what two variants have in common is computed once: with Dropout only in the head, the
        all-training and BatchNorm-only variants share the whole convolutional trunk. Each variant runs
        in its own Keras StatelessScope starting from the same variable values, so none sees another's
        state updates (BatchNormalization moving statistics are never written) and every variant draws
        the same random numbers it would draw in a pass of its own; the seed states then advance once
        per batch, as in a separate pass. Any other state a call updates (stateful RNN states, a custom
        layer's variables; not BatchNormalization statistics, which only a BatchNormalization in
        inference mode reads and only one in training mode writes) is carried from batch to batch
        within each variant, as fit carries it, every variant from the saved values. Figures are
        identical to separate passes. Everything is put back afterwards. `draw` > 0 shifts every seed:
        other random draws, for the spread of the random layers' figures.
        """
        from losscheck.probes.joint import joint_key

        kept = None if draw else self.joint.get(joint_key(families, class_weight, limit))
        if kept is not None:
            plain, weighted, self.last_batches = kept
            return plain, weighted
        return training.variant_losses(self, families, class_weight, limit, draw)

    def evaluate_float32(self) -> float | None:
        """evaluate (all data) of an in-memory copy of the model whose dtype policies are all float32,
        with the same weights and losses; None when the model computes in float32 anyway or cannot
        be copied (see float32_copy)."""
        if not low_precision_layers(self.model):
            return None
        copy = float32_copy(self.loaded)
        if copy is None:
            return None
        return Prober(copy, self.data, self.batch_size, self.seed).inference_loss()

    @data_errors
    def inference_loss(self, class_weight=None, limit: int | None = None) -> float:
        """evaluate-like loss (all inference) with optional class weights and sample limit; the state a
        call updates is put back afterwards."""
        with assigned_back(call_state_variables(self.model)):
            return training.inference_loss(self, class_weight, limit)

