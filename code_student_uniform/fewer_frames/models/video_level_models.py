"""Classifiers that map one vector per video to class probabilities.

Each returns {"predictions": [B, vocab_size] probabilities}. Their variables sit
under the caller's scope (the frame-level models open `classifier/`); weight
penalties go to the REGULARIZATION_LOSSES collection.
"""

import dataclasses
import sys

import tensorflow as tf

from fewer_frames.models import base_model
from fewer_frames.models.base_model import BaseModel, hyperparameter
from fewer_frames.models.layers import dense

# The classifiers' logits, and so their nonlinearities and the scores, are
# float32 in any precision: scores rounded to bfloat16's 8 bits would tie.
SCORES = tf.float32


@dataclasses.dataclass(frozen=True)
class ClassifierParams:
    """The video-level classifier's hyperparameters: part of every family's, since
    each puts a classifier on top of its representation."""

    video_level_classifier_model: str = hyperparameter(
        "MoeModel", "Classifier on top of the representation."
    )
    moe_num_mixtures: int = hyperparameter(2, "Number of experts per class in the MoeModel.")


class BaseClassifier(BaseModel):
    """A classifier: `create_model(model_input [B, D], vocab_size, ...)` returns
    {"predictions": [B, vocab_size]}; its cost per video is given for an input of
    `input_size` values."""

    Params = ClassifierParams
    l2_penalty = 1e-8  # the weights' L2 penalty (REGULARIZATION_LOSSES)

    def create_model(
        self,
        model_input,
        vocab_size,
        num_frames=None,
        is_training=False,
        feature_sizes=None,
        **params,
    ):
        return {"predictions": self.predictions(model_input, vocab_size, self.params(**params))}

    def predictions(self, model_input, vocab_size, params):
        """[B, vocab_size] probabilities of `model_input` [B, D] under `params`."""
        raise NotImplementedError()

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

    def predictions(self, model_input, vocab_size, params):
        logits = dense(model_input, vocab_size, "logistic", self.l2_penalty, output_dtype=SCORES)
        return tf.sigmoid(logits)


class MoeModel(BaseClassifier):
    """Mixture of experts per class.

    A softmax gate over `num_mixtures + 1` choices (the last a dummy expert that
    always says 0) weighs `num_mixtures` sigmoid experts.
    """

    @classmethod
    def forward_flops(cls, params, input_size, vocab_size):
        mixtures = params.moe_num_mixtures
        return 2 * input_size * vocab_size * (2 * mixtures + 1)

    @classmethod
    def activation_values(cls, params, vocab_size):
        # Gate and expert logits and activations, and the mixture per class.
        mixtures = params.moe_num_mixtures
        return vocab_size * (2 * (2 * mixtures + 1) + 1)

    def predictions(self, model_input, vocab_size, params):
        num_mixtures = params.moe_num_mixtures
        gate_logits = dense(
            model_input,
            vocab_size * (num_mixtures + 1),
            "gates",
            self.l2_penalty,
            use_bias=False,
            output_dtype=SCORES,
        )
        expert_logits = dense(
            model_input, vocab_size * num_mixtures, "experts", self.l2_penalty, output_dtype=SCORES
        )
        gates = tf.nn.softmax(tf.reshape(gate_logits, [-1, num_mixtures + 1]))
        experts = tf.sigmoid(tf.reshape(expert_logits, [-1, num_mixtures]))
        probabilities = tf.reduce_sum(gates[:, :num_mixtures] * experts, axis=1)
        return tf.reshape(probabilities, [-1, vocab_size])


def classifier_class(name=None):
    """The classifier class named `name` (default: --video_level_classifier_model)."""
    return base_model.find_class_by_name(
        name or ClassifierParams.video_level_classifier_model, [sys.modules[__name__]], "classifier"
    )


def classifier_params(params):
    """The `ClassifierParams` inside a family's `Params`."""
    return ClassifierParams(
        **{
            field.name: getattr(params, field.name)
            for field in dataclasses.fields(ClassifierParams)
        }
    )


def classify(representation, vocab_size, params):
    """Runs the classifier that `params` (a family's `Params`) names on a
    representation [B, D], under `classifier/`; returns its {"predictions": ...}."""
    own = classifier_params(params)
    with tf.compat.v1.variable_scope("classifier"):
        return classifier_class(own.video_level_classifier_model)().create_model(
            representation, vocab_size, **dataclasses.asdict(own)
        )
