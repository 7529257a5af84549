"""The files of a run directory: every name, and the reading and writing of its
JSON files, through tf.io.gfile (a run directory in a bucket works as a local one).

A run directory (--train_dir) holds:
- `checkpoint` and `model.ckpt-<step>.*`: the checkpoints and their index;
- `model_flags.json`: the run's ModelConfig (its models and what shapes them);
- `train_flags.json`: the mode and RunSettings the run was trained with;
- `trainer_lease.json`: the live trainer's lease (one trainer per directory);
- `validate_metrics.json`: the last evaluation's metrics (validate.py);
- `events.out.tfevents.*`: TensorBoard summaries.
A LiteRT export directory holds `model.tflite` and the run's `model_flags.json`.
"""

import dataclasses
import json
import os

import tensorflow as tf

from fewer_frames.models import model_config
from fewer_frames.system import filesystem
from fewer_frames.system.errors import UserError

CHECKPOINT_INDEX = "checkpoint"
CHECKPOINT_PREFIX = "model.ckpt"
MODEL_FLAGS_FILE = "model_flags.json"
# The settings a training run was started with (MODEL_FLAGS_FILE: its models').
TRAIN_FLAGS_FILE = "train_flags.json"
LEASE_FILE = "trainer_lease.json"
VALIDATE_METRICS_FILE = "validate_metrics.json"
LITERT_MODEL_FILE = "model.tflite"

# What a run leaves in its directory; removed by --start_new_model --overwrite.
RUN_FILES = (
    CHECKPOINT_INDEX,
    f"{CHECKPOINT_PREFIX}-*",
    "events.out.tfevents.*",
    MODEL_FLAGS_FILE,
    TRAIN_FLAGS_FILE,
)


def write_model_config(directory, config):
    """Writes `config` (a ModelConfig) as the directory's model_flags.json."""
    filesystem.write_json(os.path.join(directory, MODEL_FLAGS_FILE), dataclasses.asdict(config))


def read_model_config(path):
    """The ModelConfig in a model_flags.json file (one saved under the former names
    of its settings included)."""
    try:
        with tf.io.gfile.GFile(path) as handle:
            values = json.load(handle)
        return model_config.ModelConfig.from_saved(values)
    except (json.JSONDecodeError, TypeError, AttributeError) as error:
        raise UserError(f"{path} is not a valid {MODEL_FLAGS_FILE}: {error}") from error
    except UserError as error:
        raise UserError(f"{path}: {error}") from error


def save_run_settings(directory, settings, mode):
    """Writes the run's mode and `settings` (settings.RunSettings) to train_flags.json."""
    filesystem.write_json(os.path.join(directory, TRAIN_FLAGS_FILE), settings.values(mode))


def saved_run_settings(directory):
    """The train_flags.json of a run directory as saved (a dict), or None if absent."""
    path = os.path.join(directory, TRAIN_FLAGS_FILE)
    if not tf.io.gfile.exists(path):
        return None
    try:
        with tf.io.gfile.GFile(path) as handle:
            values = json.load(handle)
        if not isinstance(values, dict):
            raise ValueError("not a JSON object")
    except ValueError as error:
        raise UserError(
            f"{path} is not a valid {TRAIN_FLAGS_FILE} ({error}); repair it or "
            "remove it to resume the run"
        ) from error
    return values


def read_lease(directory):
    """The lease's holder as written, or None."""
    try:
        with tf.io.gfile.GFile(os.path.join(directory, LEASE_FILE)) as stream:
            return json.load(stream)
    except (ValueError, tf.errors.NotFoundError):
        return None  # a lease being written, or none: no live holder to name


def write_lease(directory, holder):
    """Writes the lease through a file of the holder's own, renamed into place."""
    path = os.path.join(directory, LEASE_FILE)
    temporary = f"{path}.{holder['host']}.{holder['pid']}.tmp"
    with tf.io.gfile.GFile(temporary, "w") as stream:
        stream.write(json.dumps(holder, sort_keys=True))
    tf.io.gfile.rename(temporary, path, overwrite=True)
