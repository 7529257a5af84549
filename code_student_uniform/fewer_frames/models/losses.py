"""Training losses: the label loss and the teacher-student distillation terms.

Student loss = ce_loss_weight * L_CE + rep_loss_weight * L_rep
             + pred_loss_weight * L_pred.
The paper's sum has all weights 1 (the defaults). The original code added L_rep
twice, so it trained with rep_loss_weight=2. The teacher's outputs enter the
student's loss through `tf.stop_gradient`: no student loss changes a teacher
weight.
"""

import sys

import tensorflow as tf

from fewer_frames.config.settings import PRED_LOSSES, DistillationSettings
from fewer_frames.models import base_model
from fewer_frames.system.errors import UserError

EPSILON = 1e-5


class BaseLoss:
    """A loss between predictions [B, C] (probabilities) and labels [B, C] (0/1, or
    a rated score); `label_weights` [B, C], when given, weighs each (example,
    class) term (rated segments: 1 where rated, 0 elsewhere)."""

    def calculate_loss(self, predictions, labels, label_weights=None):
        raise NotImplementedError()


class CrossEntropyLoss(BaseLoss):
    """Multi-label cross-entropy, summed over classes, averaged over the batch."""

    def calculate_loss(self, predictions, labels, label_weights=None, epsilon=EPSILON):
        labels = tf.cast(labels, predictions.dtype)
        cross_entropy = labels * tf.math.log(predictions + epsilon) + (1 - labels) * tf.math.log(
            1 - predictions + epsilon
        )
        if label_weights is not None:
            cross_entropy *= tf.cast(label_weights, predictions.dtype)
        return tf.reduce_mean(-tf.reduce_sum(cross_entropy, axis=1))


def get_label_loss(name):
    """The label loss class called `name` (--label_loss), instantiated."""
    return base_model.find_class_by_name(name, [sys.modules[__name__]], "loss")()


def representation_loss(teacher_representation, student_representation):
    """L_rep: squared Euclidean distance of the representations, batch mean."""
    difference = tf.stop_gradient(teacher_representation) - student_representation
    return tf.reduce_mean(tf.reduce_sum(tf.square(difference), axis=1))


def prediction_loss(teacher_predictions, student_predictions, kind):
    """L_pred between the teacher's and the student's class probabilities.

    kl: KL(teacher || student) of the two vectors each normalised to sum 1,
    summed over the batch: the original code's KL of two
    `distributions.Categorical(probs=...)`, computed as it did (log-softmax of
    the log-probabilities, no epsilon). A class the teacher gives exactly 0
    adds 0 (the original gave NaN). mse: squared error summed over classes,
    averaged over the batch (the paper).
    """
    teacher = tf.stop_gradient(teacher_predictions)
    if kind == "kl":
        teacher_logits = tf.math.log(teacher)
        log_ratio = tf.nn.log_softmax(teacher_logits) - tf.nn.log_softmax(
            tf.math.log(student_predictions)
        )
        return tf.reduce_sum(tf.math.multiply_no_nan(log_ratio, tf.nn.softmax(teacher_logits)))
    if kind == "mse":
        return tf.reduce_mean(tf.reduce_sum(tf.square(teacher - student_predictions), axis=1))
    raise UserError(f"Unknown --pred_loss {kind!r}; known: {', '.join(PRED_LOSSES)}")


def distillation_loss(
    labels,
    teacher_representation,
    teacher_predictions,
    student_representation,
    student_predictions,
    settings=DistillationSettings(),
    label_loss=None,
    label_weights=None,
):
    """The parts of the student's loss, {ce, rep, pred} (`weighted_total` sums them;
    the towers of a step sum their parts first). `label_loss` (a loss object)
    replaces the one `settings` names; `label_weights` weigh L_CE's terms."""
    label_loss = label_loss or get_label_loss(settings.label_loss)
    ce = label_loss.calculate_loss(student_predictions, labels, label_weights)
    rep = representation_loss(teacher_representation, student_representation)
    pred = prediction_loss(teacher_predictions, student_predictions, settings.pred_loss)
    return {"ce": ce, "rep": rep, "pred": pred}


# L_pred is a sum over the batch (the original's); L_CE and L_rep are batch means.
SUMMED_PARTS = ("pred",)


def weighted_total(parts, settings=DistillationSettings()):
    """The student's loss from its parts (ce, rep, pred)."""
    return (
        settings.ce_loss_weight * parts["ce"]
        + settings.rep_loss_weight * parts["rep"]
        + settings.pred_loss_weight * parts["pred"]
    )
