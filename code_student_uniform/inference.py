"""Writes the top-k predictions of a run's model for a set of videos to a CSV.

Format of the YouTube-8M Kaggle challenges: a header `VideoId,LabelConfidencePairs`
and one row per video, `<id>,<label> <score> <label> <score> ...` with the
--top_k best labels in descending score. Works with teacher-student,
student-only and teacher-only runs, on data with or without labels. Rows are
written as batches arrive (memory stays flat), into a temporary file that is
renamed to --output_file at the end.
"""

import tensorflow as tf
from absl import flags, logging

import checkpoints
import command_line
import model_graph
import readers
import runtime
import settings

command_line.define(
    *command_line.RUN_TOPICS, "checkpoint", batch_size=settings.EVALUATION_BATCH_SIZE
)
flags.DEFINE_string("input_data_pattern", "./yt8m/test*.tfrecord", "Videos to predict (glob).")
flags.DEFINE_string("output_file", "predictions.csv", "CSV to write.")

FLAGS = flags.FLAGS


def format_row(video_id, indexes, scores):
    pairs = " ".join(f"{index} {score:.6f}" for index, score in zip(indexes, scores, strict=True))
    return f"{video_id.decode()},{pairs}\n"


def run_inference(
    config,
    train_dir,
    data_pattern,
    output_file,
    top_k,
    inputs=None,
    session_settings=None,
    checkpoint_path="",
):
    """Writes the predictions of the only model of `config` (the run in
    `train_dir`; its latest readable checkpoint, or `checkpoint_path`)."""
    inputs = inputs or settings.EVALUATION_INPUT
    session_settings = session_settings or settings.SessionSettings()
    top_k = min(settings.checked_top_k(top_k), config.num_classes)
    videos = 0
    reader = config.reader()
    with runtime.atomic_output(output_file) as temporary, tf.Graph().as_default():
        batch = readers.input_tensors(inputs, reader, data_pattern, num_epochs=1, shuffle=False)
        fetches = model_graph.top_k_predictions(config, batch, top_k)
        with tf.io.gfile.GFile(temporary, "w") as stream:
            stream.write("VideoId,LabelConfidencePairs\n")
            with tf.compat.v1.Session(config=session_settings.session_config()) as session:
                checkpoint = checkpoints.restore_latest(
                    session, train_dir, config.models, checkpoint_path
                )
                for ids, indexes, scores in readers.run_to_end(
                    session, fetches, reader, data_pattern
                ):
                    stream.write("".join(map(format_row, ids, indexes, scores)))
                    videos += len(ids)
    logging.info(
        "Wrote the top %d labels of %d videos (%s of %s) to %s",
        top_k,
        videos,
        config.models[0],
        checkpoint,
        output_file,
    )
    return videos


def main(argv):
    # Only the scored model is built: a student reads only its own frames.
    config, _ = checkpoints.scored_run(command_line.requested_model(), FLAGS.train_dir)
    run_inference(
        config,
        FLAGS.train_dir,
        FLAGS.input_data_pattern,
        FLAGS.output_file,
        FLAGS.top_k,
        command_line.input_settings(),
        command_line.session_settings(),
        FLAGS.checkpoint_path,
    )


if __name__ == "__main__":
    runtime.run(main)
