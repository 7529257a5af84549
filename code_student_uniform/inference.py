"""Writes the top-k predictions of a run's model for a set of videos to a CSV.

Format of the YouTube-8M Kaggle challenges: a header `VideoId,LabelConfidencePairs`
and one row per video, `<id>,<label> <score> <label> <score> ...` with the
--top_k best labels in descending score. Works with teacher-student,
student-only and teacher-only runs, on data with or without labels. Rows are
written as batches arrive (memory stays flat), into a temporary file that is
renamed to --output_file at the end.
"""

import os
import tempfile

import tensorflow as tf
from absl import flags, logging

import checkpoints
import model_graph
import readers
import record_checks
import runtime

flags.DEFINE_string("input_data_pattern", "./yt8m/test*.tfrecord", "Videos to predict (glob).")
flags.DEFINE_string("output_file", "predictions.csv", "CSV to write.")

FLAGS = flags.FLAGS
FLAGS.set_default("batch_size", 512)


def prediction_graph(config, batch, top_k):
    """(video ids, top-k class indexes, top-k scores) of the config's only model."""
    outputs = model_graph.build_inference_graph(config, batch, is_training=False)
    scores, indexes = tf.math.top_k(outputs[f"{config.models[0]}_predictions"], k=top_k)
    return batch["video_ids"], indexes, scores


def format_row(video_id, indexes, scores):
    pairs = " ".join(f"{index} {score:.6f}" for index, score in zip(indexes, scores, strict=True))
    return f"{video_id.decode()},{pairs}\n"


def run_inference(train_dir, data_pattern, output_file, top_k):
    if top_k <= 0:
        raise runtime.UserError(f"--top_k={top_k} must be positive")
    saved = model_graph.ModelConfig.load(train_dir)
    config = model_graph.config_from_flags(saved.models, saved, train_dir)
    # Only the scored model is built: a student reads only its own frames.
    config = config.with_models([model_graph.scored_model(config, train_dir)])
    top_k = min(top_k, config.num_classes)
    folder = os.path.dirname(os.path.abspath(output_file))
    os.makedirs(folder, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=folder, prefix=".predictions-", suffix=".csv")
    videos = 0
    reader = config.reader()
    try:
        with tf.Graph().as_default(), os.fdopen(handle, "w") as stream:
            batch = readers.get_input_data_tensors(
                reader,
                data_pattern,
                batch_size=FLAGS.batch_size,
                num_epochs=1,
                shuffle=False,
                num_readers=FLAGS.num_readers,
            )
            fetches = prediction_graph(config, batch, top_k)
            stream.write("VideoId,LabelConfidencePairs\n")
            with tf.compat.v1.Session(config=runtime.session_config()) as session:
                checkpoint = checkpoints.restore_latest(session, train_dir, config.models)
                with record_checks.explained_input_errors(reader, data_pattern):
                    while True:
                        try:
                            ids, indexes, scores = session.run(fetches)
                        except tf.errors.OutOfRangeError:
                            break
                        stream.writelines(map(format_row, ids, indexes, scores))
                        videos += len(ids)
        os.replace(temporary, output_file)
    finally:
        if os.path.exists(temporary):
            os.remove(temporary)
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
    run_inference(FLAGS.train_dir, FLAGS.input_data_pattern, FLAGS.output_file, FLAGS.top_k)


if __name__ == "__main__":
    runtime.run(main)
