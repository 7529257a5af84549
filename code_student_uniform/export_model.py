"""Exports a run's student (or --eval_model) as a SavedModel for serving.

The `serving_default` signature takes `input_batch_unparsed`, a batch of
serialized frame-level SequenceExamples, parses them, selects the student's
frames itself, and returns `video_id`, `class_indexes` and `predictions` (the
--top_k best labels and their scores). The export is written beside
--export_dir and renamed into place.
"""

import tensorflow as tf
from absl import flags, logging

import checkpoints
import command_line
import model_graph
import runtime
import settings

command_line.define(*command_line.RUN_TOPICS, "checkpoint", "precision")
flags.DEFINE_string("export_dir", "", "Where to write the SavedModel (must not exist yet).")

FLAGS = flags.FLAGS
INPUT_NAME = "input_batch_unparsed"


def export(config, train_dir, export_dir, top_k, checkpoint_path="", precision="float32"):
    """Exports the only model of `config` (the run in `train_dir`; its latest
    readable checkpoint, or `checkpoint_path`) to `export_dir`, computing in
    `precision` (its variables stay float32)."""
    if not export_dir:
        raise runtime.UserError("--export_dir is required")
    if tf.io.gfile.exists(export_dir):
        raise runtime.UserError(f"--export_dir={export_dir} exists; choose a new directory")
    settings.checked_top_k(top_k)
    with runtime.atomic_output(export_dir) as staging, tf.Graph().as_default():
        serialized = tf.compat.v1.placeholder(tf.string, [None], name=INPUT_NAME)
        batch = config.reader().prepare_serialized_examples(serialized)
        video_ids, indexes, scores = model_graph.top_k_predictions(
            config, batch, min(top_k, config.num_classes), precision
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


def main(argv):
    config, _ = checkpoints.scored_run(command_line.requested_model(), FLAGS.train_dir)
    export(
        config,
        FLAGS.train_dir,
        FLAGS.export_dir,
        FLAGS.top_k,
        FLAGS.checkpoint_path,
        FLAGS.precision,
    )


if __name__ == "__main__":
    runtime.run(main)
