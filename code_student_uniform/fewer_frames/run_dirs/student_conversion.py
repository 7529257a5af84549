"""Stage 3 (convert_model): the student of a teacher-student run cut out into a
student-only run directory, global step kept, written atomically."""

import os

import tensorflow as tf
from absl import logging

from fewer_frames.models import model_config, model_graph
from fewer_frames.run_dirs import checkpoints, run_directory, run_files
from fewer_frames.system import filesystem
from fewer_frames.system.errors import UserError


def convert_to_student(config, train_dir, finetune_dir, overwrite=False):
    """Writes a student-only checkpoint (student variables, names unchanged, global
    step kept) of the latest checkpoint in `train_dir`, whose `config` is given,
    into `finetune_dir`.

    Builds the student from the config; reads no training data. The new directory
    is written beside the target and renamed into place. Returns the path of the
    new checkpoint.
    """
    if "student" not in config.models:
        raise UserError(f"{train_dir} holds no student (models: {', '.join(config.models)})")
    source = checkpoints.latest_checkpoint(train_dir)
    if not source:
        raise UserError(f"{train_dir} holds no checkpoint to convert; run the training first")
    if filesystem.same_directory(finetune_dir, train_dir):
        raise UserError("--finetune_dir must differ from --train_dir")
    if checkpoints.latest_checkpoint(finetune_dir) and not overwrite:
        raise UserError(f"{finetune_dir} already holds a checkpoint; add --overwrite to replace it")
    student_config = config.with_models(["student"])
    step = checkpoints.checkpoint_step(source)
    with filesystem.staging_directory(finetune_dir) as staging:
        with tf.Graph().as_default():
            global_step = tf.compat.v1.train.get_or_create_global_step()
            model_graph.build_models(student_config, model_graph.placeholder_batch(student_config))
            variables = model_graph.model_variables(model_config.STUDENT_SCOPE) + [global_step]
            with tf.compat.v1.Session() as session:
                checkpoints.restore(session, source, variables)
                saved = checkpoints.make_saver(variables).save(
                    session, os.path.join(staging, run_files.CHECKPOINT_PREFIX), global_step=step
                )
        run_files.write_model_config(staging, student_config)
        if not tf.io.gfile.exists(finetune_dir):
            filesystem.move_directory(staging, finetune_dir)
        else:
            run_directory.clear_run(finetune_dir)
            # The `checkpoint` index goes last: it only ever names complete files.
            filesystem.move_files(staging, finetune_dir, last=(run_files.CHECKPOINT_INDEX,))
    logging.info("Converted %s (step %d) to student-only %s", source, step, finetune_dir)
    return os.path.join(finetune_dir, os.path.basename(saved))
