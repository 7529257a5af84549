"""Exports a run's student (or --eval_model) for serving: a SavedModel, or a
LiteRT model for a device.

--format=saved_model: the `serving_default` signature takes
`input_batch_unparsed`, a batch of serialized frame-level SequenceExamples,
parses them, selects the student's frames itself, and returns `video_id`,
`class_indexes` and `predictions` (the --top_k best labels and their scores);
--precision and --xla are built in.

--format=litert: `model.tflite` and the run's `model_flags.json` (see
litert_model.py): the model takes the decoded frames it reads, [batch, k,
features], and the frame counts, and returns every class's score; --quantize
makes its weights (dynamic_range) or its weights and activations
(full_integer, calibrated on --representative_batches of
--representative_data_pattern) int8.

The export is written beside --export_dir and renamed into place.
"""

import tensorflow as tf
from absl import flags, logging

import checkpoints
import command_line
import litert_model
import model_graph
import runtime
import settings
import training

command_line.define(*command_line.RUN_TOPICS, "checkpoint", "precision")
flags.DEFINE_string("export_dir", "", "Where to write the export (must not exist yet).")
flags.DEFINE_enum("format", "saved_model", ["saved_model", "litert"], "What to write.")
flags.DEFINE_enum(
    "quantize",
    "none",
    list(litert_model.QUANTIZATIONS),
    "litert: none (float32), dynamic_range (int8 weights) or full_integer (int8 weights "
    "and activations, calibrated on videos).",
)
flags.DEFINE_string(
    "representative_data_pattern",
    "",
    "full_integer: the videos to calibrate with (empty: the run's training data, from its "
    "train_flags.json).",
)
flags.DEFINE_integer(
    "representative_batches", 8, "full_integer: batches of --batch_size videos to calibrate with."
)

FLAGS = flags.FLAGS
INPUT_NAME = "input_batch_unparsed"


def _checked_new(export_dir):
    if not export_dir:
        raise runtime.UserError("--export_dir is required")
    if tf.io.gfile.exists(export_dir):
        raise runtime.UserError(f"--export_dir={export_dir} exists; choose a new directory")


def export(
    config, train_dir, export_dir, top_k, checkpoint_path="", precision="float32", xla=False
):
    """Exports the only model of `config` (the run in `train_dir`; its latest
    readable checkpoint, or `checkpoint_path`) to `export_dir` as a SavedModel,
    computing in `precision` (its variables stay float32), compiled by XLA with
    `xla`."""
    _checked_new(export_dir)
    settings.checked_top_k(top_k)
    with runtime.atomic_output(export_dir) as staging, tf.Graph().as_default():
        serialized = tf.compat.v1.placeholder(tf.string, [None], name=INPUT_NAME)
        batch = config.reader().prepare_serialized_examples(serialized)
        video_ids, indexes, scores = model_graph.top_k_predictions(
            config, batch, min(top_k, config.num_classes), precision, xla
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
            )
            builder.save()
    logging.info("Exported the %s of %s to %s", config.models[0], checkpoint, export_dir)


def export_litert(
    config, train_dir, export_dir, quantize="none", checkpoint_path="", representative=None
):
    """Exports the only model of `config` to `export_dir` as a LiteRT model
    (litert_model.py), quantised as `quantize` says."""
    _checked_new(export_dir)
    content, checkpoint = litert_model.convert(
        config, train_dir, quantize, checkpoint_path, representative
    )
    with runtime.atomic_output(export_dir) as staging:
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
    saved = training.saved_run_settings(train_dir) or {}
    pattern = saved.get("training", {}).get("train_data_pattern")
    if not pattern:
        raise runtime.UserError(
            f"{train_dir} does not say what it was trained on: give "
            "--representative_data_pattern for --quantize=full_integer"
        )
    return pattern


def main(argv):
    config, _ = checkpoints.scored_run(command_line.requested_model(), FLAGS.train_dir)
    if FLAGS.format == "saved_model":
        export(
            config,
            FLAGS.train_dir,
            FLAGS.export_dir,
            FLAGS.top_k,
            FLAGS.checkpoint_path,
            FLAGS.precision,
            FLAGS.xla,
        )
        return
    if FLAGS.precision != "float32" or FLAGS.xla:
        raise runtime.UserError(
            "--format=litert takes neither --precision nor --xla (LiteRT runs the model its "
            "own way; --quantize makes it smaller)"
        )
    representative = None
    if FLAGS.quantize == "full_integer":
        _checked_new(FLAGS.export_dir)  # before reading the calibration videos
        representative = litert_model.representative_batches(
            config,
            calibration_data_pattern(FLAGS.train_dir, FLAGS.representative_data_pattern),
            FLAGS.representative_batches,
            FLAGS.batch_size,
        )
    export_litert(
        config,
        FLAGS.train_dir,
        FLAGS.export_dir,
        FLAGS.quantize,
        FLAGS.checkpoint_path,
        representative,
    )


if __name__ == "__main__":
    runtime.run(main)
