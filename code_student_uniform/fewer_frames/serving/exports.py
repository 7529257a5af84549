"""Writing a run's scored model for serving: a SavedModel (parsing serialized
records itself) or a LiteRT model (litert_model.py). export_model.py is the
binary; benchmark.py --what=deploy exports every way with these."""

import tensorflow as tf
from absl import logging

from fewer_frames.config import settings
from fewer_frames.run_dirs import checkpoints, run_files
from fewer_frames.serving import batch_inference, litert_model
from fewer_frames.system import filesystem
from fewer_frames.system.errors import UserError

INPUT_NAME = batch_inference.INPUT_NAME


def checked_new(export_dir):
    if not export_dir:
        raise UserError("--export_dir is required")
    if tf.io.gfile.exists(export_dir):
        raise UserError(f"--export_dir={export_dir} exists; choose a new directory")


def saved_model(
    config, train_dir, export_dir, top_k, checkpoint_path="", precision="float32", xla=False
):
    """Exports the only model of `config` (the run in `train_dir`; its latest
    readable checkpoint, or `checkpoint_path`) to `export_dir` as a SavedModel,
    computing in `precision` (its variables stay float32), compiled by XLA with
    `xla`."""
    checked_new(export_dir)
    settings.checked_top_k(top_k)
    with filesystem.atomic_output(export_dir) as staging, tf.Graph().as_default():
        serialized, (video_ids, indexes, scores) = batch_inference.serialized_top_k(
            config, min(top_k, config.num_classes), precision, xla
        )
        with tf.compat.v1.Session() as session:
            checkpoint = checkpoints.restore_latest(
                session, train_dir, config.models, checkpoint_path
            )
            signature = tf.compat.v1.saved_model.predict_signature_def(
                inputs={INPUT_NAME: serialized},
                outputs={"video_id": video_ids, "class_indexes": indexes, "predictions": scores},
            )
            builder = tf.compat.v1.saved_model.Builder(staging)
            builder.add_meta_graph_and_variables(
                session,
                [tf.compat.v1.saved_model.tag_constants.SERVING],
                signature_def_map={"serving_default": signature},
                # Run after the variables are restored: fills bfloat16's weight copies.
                main_op=tf.compat.v1.local_variables_initializer(),
            )
            builder.save()
    logging.info("Exported the %s of %s to %s", config.models[0], checkpoint, export_dir)


def litert(config, train_dir, export_dir, quantize="none", checkpoint_path="", representative=None):
    """Exports the only model of `config` to `export_dir` as a LiteRT model
    (litert_model.py), quantised as `quantize` says."""
    checked_new(export_dir)
    content, checkpoint = litert_model.convert(
        config, train_dir, quantize, checkpoint_path, representative
    )
    with filesystem.atomic_output(export_dir) as staging:
        litert_model.save(staging, content, config)
    logging.info(
        "Exported the %s of %s to %s (LiteRT, quantisation %s, %d bytes)",
        config.models[0],
        checkpoint,
        export_dir,
        quantize,
        len(content),
    )


def calibration_data_pattern(train_dir, given):
    """`given`, or the training data of the run in `train_dir`."""
    if given:
        return given
    saved = run_files.saved_run_settings(train_dir) or {}
    pattern = saved.get("training", {}).get("train_data_pattern")
    if not pattern:
        raise UserError(
            f"{train_dir} does not say what it was trained on: give "
            "--representative_data_pattern for --quantize=full_integer"
        )
    return pattern
