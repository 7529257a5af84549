"""Runs of the original code (no model_flags.json): their config recognised from the
checkpoint's variable scopes and shapes, with the requested settings."""

import tensorflow as tf
from absl import logging

from fewer_frames.models import model_config
from fewer_frames.run_dirs import run_files
from fewer_frames.system.errors import UserError


def original_run_config(requested, directory, checkpoint):
    """The config of a run directory written by the original code.

    Such a directory has checkpoints but no model_flags.json. Its models are
    the scopes present in the checkpoint (`model/`, `model_student/`); every
    setting is the requested one (the original's defaults where not given),
    except that the class count, unless --dataset_version or --num_classes is
    given, is read from the checkpoint's classifier (the original hard-wired
    4716 and told users to edit it).
    """
    try:
        shapes = tf.compat.v1.train.NewCheckpointReader(checkpoint).get_variable_to_shape_map()
    except (tf.errors.OpError, ValueError) as error:
        raise UserError(f"cannot read checkpoint {checkpoint}: {error}") from error
    models = [
        name
        for name, scope in (
            ("teacher", model_config.TEACHER_SCOPE),
            ("student", model_config.STUDENT_SCOPE),
        )
        if any(variable.startswith(scope + "/") for variable in shapes)
    ]
    if not models:
        raise UserError(
            f"{checkpoint} holds neither a teacher (model/) nor a student (model_student/), "
            f"and {directory} has no {run_files.MODEL_FLAGS_FILE}: it is not a run of this "
            "project or of the original code"
        )
    config = requested.new_config(models)
    if "num_classes" not in requested.given:
        classes = _classes_in_checkpoint(shapes, model_config.scopes_of(models)[0])
        if classes:
            config.num_classes = classes
    logging.info(
        "%s has no %s: reading it as a run of the original code (%s; settings from the "
        "command line, %d classes)",
        directory,
        run_files.MODEL_FLAGS_FILE,
        " and ".join(models),
        config.num_classes,
    )
    return config


def _classes_in_checkpoint(variable_shapes, scope):
    """The class count of a checkpoint's classifier (MoE or logistic), or None."""
    prefix = f"{scope}/classifier/"
    gates = variable_shapes.get(prefix + "gates/weights")
    experts = variable_shapes.get(prefix + "experts/weights")
    if gates and experts:  # classes * (mixtures + 1) gate columns, classes * mixtures experts
        return gates[-1] - experts[-1]
    logistic = variable_shapes.get(prefix + "logistic/weights")
    return logistic[-1] if logistic else None
