"""Builds the teacher and the student of a run, and their evaluation losses, from
its `ModelConfig` (model_config.py): the teacher under the variable scope `model/`,
the student under `model_student/`, as in the original checkpoints.
"""

import contextlib
import dataclasses

import tensorflow as tf

from fewer_frames.config.settings import PRECISIONS
from fewer_frames.inputs import frame_selection
from fewer_frames.models import layers, losses
from fewer_frames.models.model_config import STUDENT_SCOPE, TEACHER_SCOPE, model_class, scopes_of
from fewer_frames.system.errors import UserError

PRECISION_COPIES = "precision_copies"  # graph collection of _read_as's copies


def fill_precision_copies(session, restored):
    """Fills the reduced-precision copies of the variables `restored` (after a
    restore: the copies were made from the values before it)."""
    names = {variable.op.name for variable in restored}
    copies = [
        copy
        for copy in tf.compat.v1.get_collection(PRECISION_COPIES)
        if copy.op.name.rsplit("/", 1)[0] in names
    ]
    if copies:
        session.run(tf.compat.v1.variables_initializer(copies))


def _read_as(dtype):
    """A variable-scope custom getter: each float32 variable is created and saved
    as float32 (the checkpoints are the same) and read through a `dtype` copy, a
    local variable that `local_variables_initializer` fills from it once (after
    a restore), instead of a cast of every weight at every run."""
    copies = {}

    def read_cast(getter, *args, **kwargs):
        variable = getter(*args, **kwargs)
        if variable.dtype.base_dtype != tf.float32:
            return variable
        if variable.op.name not in copies:
            with tf.init_scope(), variable.graph.name_scope(None):
                copies[variable.op.name] = tf.compat.v1.Variable(
                    tf.cast(variable.read_value(), dtype),
                    trainable=False,
                    collections=[tf.compat.v1.GraphKeys.LOCAL_VARIABLES, PRECISION_COPIES],
                    name=f"{variable.op.name}/{dtype.name}_copy",
                )
        return copies[variable.op.name].read_value()

    return read_cast


def _cast_on_read(dtype):
    """A variable-scope custom getter for training in `dtype`: each trainable
    float32 variable is created and saved as float32 and read through a cast, so
    its gradient arrives, and the optimizer updates it, in float32. Statistics
    (batch norm's moving averages) stay float32 variables, updated as such."""

    def read_cast(getter, *args, **kwargs):
        variable = getter(*args, **kwargs)
        if variable.dtype.base_dtype != tf.float32 or kwargs.get("trainable") is False:
            return variable
        return tf.cast(variable, dtype)

    return read_cast


def _create(model, model_input, num_frames, config, student, is_training):
    """Calls the model's teacher or student builder; returns (representation,
    predictions), in float32 whatever the input's type."""
    build = model.create_student if student else model.create_model
    result = build(
        model_input,
        config.num_classes,
        num_frames,
        is_training=is_training,
        feature_sizes=config.feature_sizes,
        **dataclasses.asdict(config.model_params),
    )
    # A video-level model (a classifier) has its input as its representation.
    representation = result.get("representation", model_input)
    return tf.cast(representation, tf.float32), tf.cast(result["predictions"], tf.float32)


def build_models(config, batch, is_training=False, frozen=(), precision="float32", xla=False):
    """Builds the config's models on an input batch and registers their variables
    as model variables; models named in `frozen` are built in inference mode
    (e.g. batch norm with its moving statistics). With `precision` bfloat16 the
    models compute in bfloat16 (their input and every variable read cast; the
    variables stay float32), their outputs cast back to float32: in training
    through a cast at every read, for scoring through copies made once. With `xla`,
    the models' ops are compiled by XLA (a jit scope: on the CPU too, without
    TensorFlow's global XLA flags); the input pipeline is not.

    Returns a dict with `teacher_representation`, `teacher_predictions` (if the
    config holds a teacher), `student_representation`, `student_predictions`,
    `student_num_frames` (if it holds a student), `labels`, and `label_weights`
    when the batch has them (rated segments).
    """
    model = model_class(config.model)()
    if precision not in PRECISIONS:
        raise UserError(f"--precision={precision}: one of {', '.join(PRECISIONS)}")
    dtype = tf.as_dtype(precision)
    getter = None
    if dtype != tf.float32:
        getter = _cast_on_read(dtype) if is_training else _read_as(dtype)
    model_input = tf.cast(layers.l2_normalize_frames(batch["video_matrix"]), dtype)
    outputs = {"labels": batch["labels"]}
    if "label_weights" in batch:
        outputs["label_weights"] = batch["label_weights"]
    compiled = tf.xla.experimental.jit_scope() if xla else contextlib.nullcontext()
    with compiled:
        if "teacher" in config.models:
            with tf.compat.v1.variable_scope(TEACHER_SCOPE, custom_getter=getter):
                representation, predictions = _create(
                    model,
                    model_input,
                    batch["num_frames"],
                    config,
                    student=False,
                    is_training=is_training and "teacher" not in frozen,
                )
            outputs.update(teacher_representation=representation, teacher_predictions=predictions)
        if "student" in config.models:
            if config.decodes_student_frames_only():  # the reader selected them already
                student_input, student_num_frames = model_input, batch["num_frames"]
            else:
                student_input, student_num_frames = frame_selection.select_frames(
                    model_input,
                    batch["num_frames"],
                    config.selection(),
                    is_training=is_training,
                    video_ids=batch.get("video_ids"),
                    segments="segment_starts" in batch,
                )
            with tf.compat.v1.variable_scope(STUDENT_SCOPE, custom_getter=getter):
                representation, predictions = _create(
                    model,
                    student_input,
                    student_num_frames,
                    config,
                    student=True,
                    is_training=is_training and "student" not in frozen,
                )
            outputs.update(
                student_representation=representation,
                student_predictions=predictions,
                student_num_frames=student_num_frames,
            )
    register_model_variables(scopes_of(config.models))
    return outputs


def model_variables(scope):
    """The variables a model owns (weights, batch-norm statistics), not optimizer slots."""
    return tf.compat.v1.get_collection(tf.compat.v1.GraphKeys.MODEL_VARIABLES, scope + "/")


def variables_of(models):
    """The model variables of the named models ("teacher", "student"), in scope order."""
    return [variable for scope in scopes_of(models) for variable in model_variables(scope)]


def register_model_variables(scopes):
    """Marks the variables built so far under `scopes` as model variables."""
    for scope in scopes:
        for variable in tf.compat.v1.global_variables(scope + "/"):
            if variable not in model_variables(scope):
                tf.compat.v1.add_to_collection(tf.compat.v1.GraphKeys.MODEL_VARIABLES, variable)


def placeholder_batch(config):
    """Input placeholders shaped like a reader's batch (for graphs that read no data)."""
    width = sum(config.feature_sizes)
    steps = (
        config.selection().frame_budget
        if config.decodes_student_frames_only()
        else (config.max_num_frames)
    )
    shape = [None, steps, width] if config.frame_features else [None, width]
    return {
        "video_ids": tf.compat.v1.placeholder(tf.string, [None], "video_ids"),
        "video_matrix": tf.compat.v1.placeholder(tf.float32, shape, "video_matrix"),
        "labels": tf.compat.v1.placeholder(tf.float32, [None, config.num_classes], "labels"),
        "num_frames": tf.compat.v1.placeholder(tf.int32, [None], "num_frames"),
    }


def predictions(config, batch, precision="float32", xla=False):
    """(video ids, predictions [B, num_classes]) of the config's only model."""
    outputs = build_models(config, batch, precision=precision, xla=xla)
    return batch["video_ids"], outputs[f"{config.models[0]}_predictions"]


def top_k_predictions(config, batch, top_k, precision="float32", xla=False):
    """(video ids, top-k class indexes, top-k scores) of the config's only model."""
    video_ids, scores = predictions(config, batch, precision, xla)
    scores, indexes = tf.math.top_k(scores, k=top_k)
    return video_ids, indexes, scores


def evaluation_losses(outputs, evaluated, label_loss):
    """Label loss (a loss class name) of the evaluated model, and L_REP when a
    teacher and a student exist."""
    label_loss = losses.get_label_loss(label_loss)
    result = {
        "loss": label_loss.calculate_loss(
            outputs[f"{evaluated}_predictions"], outputs["labels"], outputs.get("label_weights")
        )
    }
    if "teacher_representation" in outputs and "student_representation" in outputs:
        result["rep_loss"] = losses.representation_loss(
            outputs["teacher_representation"], outputs["student_representation"]
        )
    return result
