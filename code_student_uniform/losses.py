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
from absl import flags

import utils
from runtime import UserError

flags.DEFINE_string("label_loss", "CrossEntropyLoss", "Loss between predictions and labels.")
flags.DEFINE_enum(
    "pred_loss",
    "kl",
    ["kl", "mse"],
    "Distance between teacher and student "
    "predictions: kl (the original code) or mse (the paper's squared error).",
)
flags.DEFINE_float("ce_loss_weight", 1.0, "Weight of the student's label loss L_CE.")
flags.DEFINE_float("rep_loss_weight", 1.0, "Weight of the representation loss L_rep.")
flags.DEFINE_float("pred_loss_weight", 1.0, "Weight of the prediction loss L_pred.")

EPSILON = 1e-5


class BaseLoss:
    """A loss between predictions [B, C] (probabilities) and labels [B, C] (0/1)."""

    def calculate_loss(self, predictions, labels, **unused):
        raise NotImplementedError()


class CrossEntropyLoss(BaseLoss):
    """Multi-label cross-entropy, summed over classes, averaged over the batch."""

    def calculate_loss(self, predictions, labels, epsilon=EPSILON, **unused):
        labels = tf.cast(labels, predictions.dtype)
        cross_entropy = labels * tf.math.log(predictions + epsilon) + (1 - labels) * tf.math.log(
            1 - predictions + epsilon
        )
        return tf.reduce_mean(-tf.reduce_sum(cross_entropy, axis=1))


def get_label_loss(name=None):
    """The label loss class named by --label_loss, instantiated."""
    return utils.find_class_by_name(
        utils.flag_or(name, "label_loss"), [sys.modules[__name__]], "loss"
    )()


def representation_loss(teacher_representation, student_representation):
    """L_rep: squared Euclidean distance of the representations, batch mean."""
    difference = tf.stop_gradient(teacher_representation) - student_representation
    return tf.reduce_mean(tf.reduce_sum(tf.square(difference), axis=1))


def prediction_loss(teacher_predictions, student_predictions, kind=None):
    """L_pred between the teacher's and the student's class probabilities.

    kl: KL(teacher || student) of the two vectors each normalised to sum 1,
    summed over the batch: the original code's KL of two
    `distributions.Categorical(probs=...)`, computed as it did (log-softmax of
    the log-probabilities, no epsilon). A class the teacher gives exactly 0
    adds 0 (the original gave NaN). mse: squared error summed over classes,
    averaged over the batch (the paper).
    """
    kind = utils.flag_or(kind, "pred_loss")
    teacher = tf.stop_gradient(teacher_predictions)
    if kind == "kl":
        teacher_logits = tf.math.log(teacher)
        log_ratio = tf.nn.log_softmax(teacher_logits) - tf.nn.log_softmax(
            tf.math.log(student_predictions)
        )
        return tf.reduce_sum(tf.math.multiply_no_nan(log_ratio, tf.nn.softmax(teacher_logits)))
    if kind == "mse":
        return tf.reduce_mean(tf.reduce_sum(tf.square(teacher - student_predictions), axis=1))
    raise UserError(f"Unknown --pred_loss {kind!r}; known: kl, mse")


def distillation_loss(
    labels,
    teacher_representation,
    teacher_predictions,
    student_representation,
    student_predictions,
    label_loss=None,
    pred_loss=None,
    ce_loss_weight=None,
    rep_loss_weight=None,
    pred_loss_weight=None,
):
    """The student's loss and its parts: dict with total, ce, rep, pred."""
    label_loss = label_loss or get_label_loss()
    ce = label_loss.calculate_loss(student_predictions, labels)
    rep = representation_loss(teacher_representation, student_representation)
    pred = prediction_loss(teacher_predictions, student_predictions, pred_loss)
    total = (
        utils.flag_or(ce_loss_weight, "ce_loss_weight") * ce
        + utils.flag_or(rep_loss_weight, "rep_loss_weight") * rep
        + utils.flag_or(pred_loss_weight, "pred_loss_weight") * pred
    )
    return {"total": total, "ce": ce, "rep": rep, "pred": pred}
