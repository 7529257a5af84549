"""The training graph of every mode: the models on each tower, their losses, one
optimizer per learning model, the learning rate, and what the loop fetches.

Modes (which models a run holds, and which of them learn):
- parallel: teacher on L_CE and student on the distillation loss, each with its
  own optimizer, in one step (the original train.py);
- serial: a trained teacher restored from --teacher_dir and frozen; the student
  learns from it;
- teacher_only / student_only: one model on L_CE (Teacher-Skyline, Uniform-k);
- finetune: the student alone on L_CE, starting from a converted checkpoint.
"""

import contextlib

import tensorflow as tf

from fewer_frames.config.settings import RunSettings
from fewer_frames.models import losses, model_config, model_graph
from fewer_frames.system.errors import UserError
from fewer_frames.training import towers

MODES = {
    # mode: (models in the run, models that learn)
    "parallel": (("teacher", "student"), ("teacher", "student")),
    "serial": (("teacher", "student"), ("student",)),
    "teacher_only": (("teacher",), ("teacher",)),
    "student_only": (("student",), ("student",)),
    "finetune": (("student",), ("student",)),
}
OPTIMIZERS = (
    "AdamOptimizer",
    "GradientDescentOptimizer",
    "RMSPropOptimizer",
    "AdagradOptimizer",
    "AdadeltaOptimizer",
    "FtrlOptimizer",
)


def make_optimizer(name, learning_rate):
    if name not in OPTIMIZERS:
        raise UserError(f"Unknown --optimizer {name!r}; known: {', '.join(OPTIMIZERS)}")
    return getattr(tf.compat.v1.train, name)(learning_rate)


def _minimize(loss, scope, learning_rate, settings, global_step=None):
    """One optimizer for the trainable variables under `scope`. (`tf.gradients`
    puts each gradient op on the device of the op it differentiates: its tower's.)"""
    variables = tf.compat.v1.trainable_variables(scope + "/")
    gradients = tf.gradients(loss, variables)
    if settings.clip_gradient_norm > 0:
        gradients, _ = tf.clip_by_global_norm(gradients, settings.clip_gradient_norm)
    # The first tower's batch-norm updates (the others' ops are under tower_<i>/).
    update_ops = tf.compat.v1.get_collection(tf.compat.v1.GraphKeys.UPDATE_OPS, scope + "/")
    with tf.control_dependencies(update_ops):
        optimizer = make_optimizer(settings.optimizer, learning_rate)
        return optimizer.apply_gradients(
            zip(gradients, variables, strict=True), global_step=global_step
        )


def _regularization(scope):
    return tf.compat.v1.losses.get_regularization_loss(scope=scope + "/")


def _tower_losses(config, batch, frozen, label_loss, distillation, xla=False, precision="float32"):
    """One tower: the models on its batch, and their losses (batch means; L_pred
    a batch sum)."""
    outputs = model_graph.build_models(
        config, batch, is_training=True, frozen=frozen, precision=precision, xla=xla
    )
    labels, weights = batch["labels"], batch.get("label_weights")
    values = {}
    if "teacher" in config.models:
        values["teacher_loss"] = label_loss.calculate_loss(
            outputs["teacher_predictions"], labels, weights
        )
    if "student" in config.models:
        if "teacher" in config.models:
            parts = losses.distillation_loss(
                labels,
                outputs["teacher_representation"],
                outputs["teacher_predictions"],
                outputs["student_representation"],
                outputs["student_predictions"],
                distillation,
                label_loss=label_loss,
                label_weights=weights,
            )
            values.update(rep_loss=parts["rep"], pred_loss=parts["pred"])
        else:
            parts = {
                "ce": label_loss.calculate_loss(outputs["student_predictions"], labels, weights)
            }
        values["ce_loss"] = parts["ce"]
    return values, outputs


def _build_towers(
    config, batch, devices, frozen, label_loss, distillation, xla=False, precision="float32"
):
    """The models and losses on every tower; the losses of the whole batch and
    the predictions of every model, in batch order."""
    tower_values, tower_outputs = [], []
    for index, (device, tower_batch) in enumerate(
        zip(devices, towers.split_batch(batch, len(devices)), strict=True)
    ):
        with contextlib.ExitStack() as stack:
            if device:
                stack.enter_context(tf.compat.v1.device(towers.placement(device)))
            if index:
                scope = tf.compat.v1.get_variable_scope()
                stack.enter_context(tf.compat.v1.variable_scope(scope, reuse=True))
                stack.enter_context(tf.name_scope(f"tower_{index}"))
            values, outputs = _tower_losses(
                config, tower_batch, frozen, label_loss, distillation, xla, precision
            )
        tower_values.append(values)
        tower_outputs.append(outputs)
    summed = {f"{part}_loss" for part in losses.SUMMED_PARTS}
    values = towers.combine(tower_values, sums=summed)
    predictions = {
        name: tf.concat([outputs[f"{name}_predictions"] for outputs in tower_outputs], axis=0)
        for name in config.models
    }
    return values, predictions


def build_training_graph(config, mode, batch, settings=RunSettings(), devices=(None,)):
    """Models, losses and train op, the batch split over the towers on `devices`
    (towers.tower_devices). Returns a dict of tensors the loop fetches."""
    _, trained = MODES[mode]
    training = settings.training
    global_step = tf.compat.v1.train.get_or_create_global_step()
    frozen = [name for name in config.models if name not in trained]
    learning_rate = tf.compat.v1.train.exponential_decay(
        training.base_learning_rate,
        global_step * settings.inputs.batch_size,
        training.learning_rate_decay_examples,
        training.learning_rate_decay,
        staircase=True,
    )
    label_loss = losses.get_label_loss(settings.distillation.label_loss)
    fetches, predictions = _build_towers(
        config,
        batch,
        devices,
        frozen,
        label_loss,
        settings.distillation,
        settings.session.xla,
        settings.training.precision,
    )
    totals, train_ops = {}, []
    if "teacher" in trained:
        total = fetches["teacher_loss"] + training.regularization_penalty * _regularization(
            model_config.TEACHER_SCOPE
        )
        totals["teacher_total_loss"] = total
        train_ops.append(
            _minimize(total, model_config.TEACHER_SCOPE, learning_rate, training, global_step)
        )
    if "student" in config.models:
        if "teacher" in config.models:
            parts = {"ce": fetches["ce_loss"], "rep": fetches["rep_loss"]}
            parts["pred"] = fetches["pred_loss"]
            fetches["student_loss"] = losses.weighted_total(parts, settings.distillation)
        else:
            fetches["student_loss"] = fetches["ce_loss"]
        total = fetches["student_loss"] + training.regularization_penalty * _regularization(
            model_config.STUDENT_SCOPE
        )
        totals["student_total_loss"] = total
        train_ops.append(
            _minimize(
                total,
                model_config.STUDENT_SCOPE,
                learning_rate,
                training,
                None if train_ops else global_step,
            )
        )
    for name, tensor in {**fetches, **totals}.items():
        tf.compat.v1.summary.scalar(f"losses/{name}", tensor)
    tf.compat.v1.summary.scalar("learning_rate", learning_rate)
    train_op = tf.group(*train_ops)
    with tf.control_dependencies([train_op]):
        # Read after the update: a read beside it may see the step before the increment.
        step_after_update = global_step.read_value()
    return {
        "train_op": train_op,
        "global_step": global_step,
        "step_after_update": step_after_update,
        "losses": fetches,
        "total_losses": totals,
        "weights_digest": weights_digest(config.models),
        "weights_finite": tf.reduce_all(
            [tf.reduce_all(tf.math.is_finite(var)) for var in tf.compat.v1.trainable_variables()]
        ),
        "predictions": predictions,
        "labels": batch["labels"],
        "summary": tf.compat.v1.summary.merge_all(),
    }


def weights_digest(models):
    """Sum of the squares of the models' variables (float64, in name order): a
    fingerprint that tells whether two processes see the same weights."""
    variables = model_graph.variables_of(models)
    return tf.add_n(
        [
            tf.reduce_sum(tf.square(tf.cast(variable, tf.float64)))
            for variable in sorted(variables, key=lambda variable: variable.op.name)
        ]
    )
