"""Classifiers that map one vector per video to class probabilities.

Each returns {"predictions": [B, vocab_size] probabilities}. Their variables sit
under the caller's scope (the frame-level models open `classifier/`); weight
penalties go to the REGULARIZATION_LOSSES collection.
"""

import sys

import tensorflow as tf

import utils
from layers import dense
from models import BaseModel, Hyperparameter
from runtime import UserError

# Which classifier a frame-level model puts on top of its representation.
CLASSIFIER = Hyperparameter(
    "classifier_name",
    "MoeModel",
    "Classifier on top of the representation.",
    flag="video_level_classifier_model",
)


# What every model gets from model_graph.py, whether it uses it or not.
BUILD_ARGUMENTS = ("is_training", "feature_sizes")


class BaseClassifier(BaseModel):
    """A classifier: `create_model(model_input [B, D], vocab_size, ...)` returns
    {"predictions": [B, vocab_size]}; its cost per video is given for an input of
    `input_size` values."""

    @classmethod
    def checked_params(cls, params):
        """The classifier's own hyperparameters out of `params`, defaults filled in.
        A name no classifier declares (a typo, another family's setting) is an
        error, not silently dropped."""
        known = {parameter.name for parameter in CLASSIFIER_HYPERPARAMETERS}
        unknown = sorted(set(params) - known - set(BUILD_ARGUMENTS))
        if unknown:
            raise UserError(
                f"{cls.__name__}: unknown keyword argument(s) {', '.join(unknown)}; "
                f"classifiers take {', '.join(sorted(known))}"
            )
        return cls.split_params(params)[0]

    @classmethod
    def forward_flops(cls, params, input_size, vocab_size):
        raise NotImplementedError()

    @classmethod
    def activation_values(cls, params, vocab_size):
        raise NotImplementedError()


class LogisticModel(BaseClassifier):
    """One sigmoid unit per class."""

    @classmethod
    def forward_flops(cls, params, input_size, vocab_size):
        return 2 * input_size * vocab_size

    @classmethod
    def activation_values(cls, params, vocab_size):
        return 3 * vocab_size  # logits, probabilities, their gradient

    def create_model(self, model_input, vocab_size, num_frames=None, l2_penalty=1e-8, **params):
        self.checked_params(params)
        logits = dense(model_input, vocab_size, "logistic", l2_penalty)
        return {"predictions": tf.sigmoid(logits)}


class MoeModel(BaseClassifier):
    """Mixture of experts per class.

    A softmax gate over `num_mixtures + 1` choices (the last a dummy expert that
    always says 0) weighs `num_mixtures` sigmoid experts.
    """

    hyperparameters = (
        Hyperparameter(
            "num_mixtures",
            2,
            "Number of experts per class in the MoeModel.",
            flag="moe_num_mixtures",
        ),
    )

    @classmethod
    def forward_flops(cls, params, input_size, vocab_size):
        mixtures = cls.split_params(params)[0]["num_mixtures"]
        return 2 * input_size * vocab_size * (2 * mixtures + 1)

    @classmethod
    def activation_values(cls, params, vocab_size):
        # Gate and expert logits and activations, and the mixture per class.
        mixtures = cls.split_params(params)[0]["num_mixtures"]
        return vocab_size * (2 * (2 * mixtures + 1) + 1)

    def create_model(self, model_input, vocab_size, num_frames=None, l2_penalty=1e-8, **params):
        num_mixtures = self.checked_params(params)["num_mixtures"]
        gate_logits = dense(
            model_input, vocab_size * (num_mixtures + 1), "gates", l2_penalty, use_bias=False
        )
        expert_logits = dense(model_input, vocab_size * num_mixtures, "experts", l2_penalty)
        gates = tf.nn.softmax(tf.reshape(gate_logits, [-1, num_mixtures + 1]))
        experts = tf.sigmoid(tf.reshape(expert_logits, [-1, num_mixtures]))
        probabilities = tf.reduce_sum(gates[:, :num_mixtures] * experts, axis=1)
        return {"predictions": tf.reshape(probabilities, [-1, vocab_size])}


# The classifier's settings, part of every frame-level model's hyperparameters.
CLASSIFIER_HYPERPARAMETERS = (CLASSIFIER,) + MoeModel.hyperparameters


def classifier_class(name=None):
    """The classifier class named `name` (default: --video_level_classifier_model)."""
    return utils.find_class_by_name(
        name or CLASSIFIER.default, [sys.modules[__name__]], "classifier"
    )


def classify(representation, vocab_size, classifier_name=None, **params):
    """Runs the named video-level classifier on a representation [B, D], under
    `classifier/`; returns its {"predictions": ...}."""
    with tf.compat.v1.variable_scope("classifier"):
        return classifier_class(classifier_name)().create_model(
            representation, vocab_size, **params
        )
