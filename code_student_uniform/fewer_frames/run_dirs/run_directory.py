"""A run directory as a whole: starting anew or overwriting, the config it holds
(its model_flags.json, or an original run's), the default fine-tune directory."""

import os

import tensorflow as tf
from absl import logging

from fewer_frames.run_dirs import checkpoints, original_runs, run_files
from fewer_frames.system import filesystem
from fewer_frames.system.errors import UserError


def clear_run(directory):
    """Removes a previous run's checkpoints, events and model flags from `directory`."""
    for pattern in run_files.RUN_FILES:
        for path in tf.io.gfile.glob(os.path.join(directory, pattern)):
            tf.io.gfile.remove(path)
    evaluations = os.path.join(directory, "eval")
    if tf.io.gfile.isdir(evaluations):
        tf.io.gfile.rmtree(evaluations)


def prepare_run_directory(directory, start_new_model, overwrite):
    """Returns the checkpoint to resume from, or None to start a new model.

    `start_new_model` on a directory with checkpoints refuses unless `overwrite`.
    """
    latest = checkpoints.latest_checkpoint(directory)
    if start_new_model and latest:
        if not overwrite:
            raise UserError(
                f"{directory} already holds checkpoints (latest {os.path.basename(latest)}); "
                "--start_new_model would replace them: add --overwrite, or choose another "
                "--train_dir, or drop --start_new_model to resume"
            )
        logging.info("--overwrite: removing the previous run in %s", directory)
        clear_run(directory)
        latest = None
    tf.io.gfile.makedirs(directory)
    return latest


def saved_config(requested, directory):
    """The config saved in a run directory; for a directory the original code
    trained (checkpoints, no model_flags.json), see `original_run_config`."""
    path = os.path.join(directory, run_files.MODEL_FLAGS_FILE)
    if tf.io.gfile.exists(path):
        return run_files.read_model_config(path)
    checkpoint = tf.train.latest_checkpoint(directory) if tf.io.gfile.isdir(directory) else None
    if checkpoint:
        return original_runs.original_run_config(requested, directory, checkpoint)
    raise UserError(
        f"{path} does not exist: {directory} holds no trained run "
        "(train into it first, or point --train_dir at a run directory)"
    )


def existing_run(requested, directory):
    """The config of the run in `directory`, with the settings `requested` gives."""
    saved = saved_config(requested, directory)
    return requested.run_config(saved.models, saved, directory)


def scored_run(requested, directory):
    """(the config of the run in `directory` holding only the model to score,
    that model's name)."""
    config = existing_run(requested, directory)
    scored = requested.scored_model(config, directory)
    return config.with_models([scored]), scored


def default_finetune_dir(train_dir):
    """The seed's convention: the train directory's name with `train` -> `finetune`."""
    path = os.path.normpath(train_dir) if filesystem.is_local(train_dir) else train_dir.rstrip("/")
    head, name = path.rsplit("/", 1) if "/" in path else ("", path)
    name = name + "_finetune" if "train" not in name else "finetune".join(name.rsplit("train", 1))
    return f"{head}/{name}" if head else name
