"""The one table of built-in loss kinds (which built-in a loss is, and what that implies) and the one
tuple of layer families with a training behaviour. Every module reads these; none spells them out.
Pure Python: no TensorFlow.
"""

from __future__ import annotations

import numbers

# ----------------------------------------------------------------------------------------------
# Loss kinds: keras.losses function names, with the traits the checks and the reference read
# ----------------------------------------------------------------------------------------------
#: kind -> traits. last_axis_mean: the value of an element is a mean (or sum) over the last axis, every
#: other axis kept; crossentropy: a crossentropy (probabilities clipped to [eps, 1 - eps]);
#: sparse_targets / onehot_targets: integer class indices / one-hot rows as targets;
#: same_shape_targets: targets shaped like the predictions; samplewise: one value per sample over the
#: whole class axis; unit_range_targets / non_negative_targets / distribution_targets: what valid
#: targets are; binary_targets: 0/1 labels; class_probabilities: predictions are a probability
#: distribution over the last axis; positive_predictions: predictions must be positive;
#: sigmoid_logits / softmax_logits: TensorFlow's implementation reads the cached pre-activation
#: logits of that activation, whatever from_logits says; batch_axis_default: with its default axis=None
#: it reduces over every axis, the batch included (one value per batch).
LOSS_KINDS: dict[str, frozenset[str]] = {k: frozenset(v) for k, v in {
    "mean_squared_error": {"last_axis_mean", "same_shape_targets"},
    "mean_absolute_error": {"last_axis_mean", "same_shape_targets"},
    "mean_absolute_percentage_error": {"last_axis_mean", "same_shape_targets"},
    "mean_squared_logarithmic_error": {"last_axis_mean", "same_shape_targets", "non_negative_targets",
                                       "positive_predictions"},
    "huber": {"last_axis_mean", "same_shape_targets"},
    "log_cosh": {"last_axis_mean", "same_shape_targets"},
    "hinge": {"last_axis_mean", "same_shape_targets", "binary_targets"},
    "squared_hinge": {"last_axis_mean", "same_shape_targets", "binary_targets"},
    "categorical_hinge": {"onehot_targets", "same_shape_targets", "samplewise"},
    "kl_divergence": {"same_shape_targets", "non_negative_targets", "distribution_targets", "class_probabilities"},
    "poisson": {"last_axis_mean", "same_shape_targets", "non_negative_targets", "positive_predictions"},
    "cosine_similarity": {"same_shape_targets"},
    "binary_crossentropy": {"last_axis_mean", "same_shape_targets", "crossentropy", "unit_range_targets",
                            "binary_targets", "sigmoid_logits"},
    "binary_focal_crossentropy": {"last_axis_mean", "same_shape_targets", "crossentropy", "unit_range_targets",
                                  "binary_targets", "sigmoid_logits"},
    "categorical_crossentropy": {"crossentropy", "onehot_targets", "same_shape_targets", "samplewise",
                                 "distribution_targets", "class_probabilities", "softmax_logits"},
    "categorical_focal_crossentropy": {"crossentropy", "onehot_targets", "same_shape_targets", "samplewise",
                                       "distribution_targets", "class_probabilities"},
    "sparse_categorical_crossentropy": {"crossentropy", "sparse_targets", "samplewise", "class_probabilities",
                                        "softmax_logits"},
    "categorical_generalized_cross_entropy": {"sparse_targets"},
    "dice": {"unit_range_targets", "batch_axis_default"},
    "tversky": {"unit_range_targets", "batch_axis_default"},
    "circle": set(),
    "ctc": set(),
}.items()}


def kinds_with(trait: str) -> frozenset[str]:
    """The built-in kinds that have `trait` (see LOSS_KINDS)."""
    return frozenset(k for k, traits in LOSS_KINDS.items() if trait in traits)


LAST_AXIS_MEAN_KINDS = kinds_with("last_axis_mean")
CROSSENTROPY_KINDS = kinds_with("crossentropy")
SPARSE_KINDS = kinds_with("sparse_targets")
ONEHOT_KINDS = kinds_with("onehot_targets")
SAME_SHAPE_KINDS = kinds_with("same_shape_targets")
SAMPLEWISE_KINDS = kinds_with("samplewise")
UNIT_RANGE_KINDS = kinds_with("unit_range_targets")
NON_NEGATIVE_KINDS = kinds_with("non_negative_targets")
DISTRIBUTION_KINDS = kinds_with("distribution_targets")
BINARY_KINDS = kinds_with("binary_targets")
CLASS_PROBABILITY_KINDS = kinds_with("class_probabilities")
POSITIVE_PREDICTION_KINDS = kinds_with("positive_predictions")
BATCH_AXIS_DEFAULT_KINDS = kinds_with("batch_axis_default")
#: kind -> the TensorFlow op whose input the loss reads as logits (sigmoid_logits / softmax_logits)
LOGITS_OP_TYPE = {k: ("Sigmoid" if "sigmoid_logits" in t else "Softmax") for k, t in LOSS_KINDS.items()
                  if {"sigmoid_logits", "softmax_logits"} & t}

#: loss strings compile() resolves from the shapes (binary, sparse or categorical crossentropy)
AUTO_CROSSENTROPY = ("crossentropy", "ce")
#: short names keras.losses.get maps to a function of another name
SHORT_NAMES = {"mse": "mean_squared_error", "mae": "mean_absolute_error"}
#: Keras 2 (tf.keras) loss names Keras 3's keras.losses.get no longer knows -> the Keras 3 name
KERAS2_ALIASES = {"huber_loss": "huber", "logcosh": "log_cosh", "kullback_leibler_divergence": "kl_divergence",
                  "cosine_proximity": "cosine_similarity"}


def builtin_name(loss: str) -> str:
    """A loss string's function name: SHORT_NAMES resolved, any other name as it is."""
    return SHORT_NAMES.get(loss, loss)


# ----------------------------------------------------------------------------------------------
# Layer families: layers whose behaviour depends on `training`
# ----------------------------------------------------------------------------------------------
#: every family, in report order; each has a train_mode_<family>_only figure
FAMILIES = ("dropout", "batchnorm", "noise", "custom")
#: the families of built-in layers (custom: user layers whose call() takes `training`)
BUILTIN_FAMILIES = ("dropout", "batchnorm", "noise")
#: the families whose training behaviour draws random numbers (or may: custom layers)
STOCHASTIC_FAMILIES = ("dropout", "noise", "custom")
#: BatchNormalization with trainable=False: inference behaviour in fit too, so no family of its own
FROZEN_BATCHNORM = "frozen_batchnorm"
#: the layer lists a report shows, in order (frozen BatchNormalization after the trainable one)
LISTED_FAMILIES = ("dropout", "batchnorm", FROZEN_BATCHNORM, "noise", "custom")


def rate_of(layer: object, attribute: str) -> float:
    """A layer attribute read as a rate (Dropout's `rate`, an RNN's `dropout`): its value when it is a plain
    number, 0 otherwise (None, or a sub-layer a custom layer holds under that name, e.g. `self.dropout =
    Dropout(0.1)`)."""
    value = getattr(layer, attribute, None)
    return float(value) if isinstance(value, numbers.Real) and not isinstance(value, bool) else 0.0


def family_figure(family: str) -> str:
    """The figure with only `family` in training behaviour."""
    return f"train_mode_{family}_only"
