"""Writes the top-k predictions of a run's model for a set of videos to a CSV.

Format of the YouTube-8M Kaggle challenges: a header `VideoId,LabelConfidencePairs`
and one row per video, `<id>,<label> <score> <label> <score> ...` with the
--top_k best labels in descending score. Works with teacher-student,
student-only and teacher-only runs, on data with or without labels. Rows are
written as batches arrive (memory stays flat), into a temporary file that is
renamed to --output_file at the end. With --vocabulary, a readable JSON-lines
file with the class names is written beside it (--named_output_file).

With --segment_labels, it predicts the segments of 2019 records and writes the
Segments challenge's submission instead: a header `Class,Segments` and, per class
of --segment_classes, its --segment_top_k segments (`<video id>:<start>`) by
score, space-separated (segment_metrics.TopSegments: memory bounded by K per
class, not by the data).
"""

import contextlib
import dataclasses

import tensorflow as tf
from absl import flags, logging

import checkpoints
import command_line
import model_graph
import prediction_files
import readers
import runtime
import segment_metrics
import settings
import vocabulary

command_line.define(
    *command_line.RUN_TOPICS,
    "checkpoint",
    "vocabulary",
    "segments",
    "precision",
    batch_size=settings.EVALUATION_BATCH_SIZE,
)
flags.DEFINE_string("input_data_pattern", "./yt8m/test*.tfrecord", "Videos to predict (glob).")
flags.DEFINE_string("output_file", "predictions.csv", "CSV to write.")
flags.DEFINE_string(
    "named_output_file",
    "",
    "With --vocabulary: a JSON line per video (its id, its top classes with names and "
    "scores); empty: --output_file with .jsonl for .csv.",
)

FLAGS = flags.FLAGS


def named_output_path(output_file):
    stem = output_file[: -len(".csv")] if output_file.endswith(".csv") else output_file
    return stem + ".jsonl"


def run_inference(
    config,
    train_dir,
    data_pattern,
    output_file,
    top_k,
    inputs=None,
    session_settings=None,
    checkpoint_path="",
    names=None,
    named_output_file="",
    precision="float32",
):
    """Writes the predictions of the only model of `config` (the run in
    `train_dir`; its latest readable checkpoint, or `checkpoint_path`); with
    `names` ({class: name}), also the readable `named_output_file`."""
    inputs = inputs or settings.EVALUATION_INPUT
    session_settings = session_settings or settings.SessionSettings()
    top_k = min(settings.checked_top_k(top_k), config.num_classes)
    videos = 0
    reader = config.reader(segment_size=inputs.segments())
    with contextlib.ExitStack() as outputs, tf.Graph().as_default():
        temporary = outputs.enter_context(runtime.atomic_output(output_file))
        stream = outputs.enter_context(tf.io.gfile.GFile(temporary, "w"))
        stream.write(prediction_files.HEADER + "\n")
        named = None
        if names is not None:
            named_temporary = outputs.enter_context(runtime.atomic_output(named_output_file))
            named = outputs.enter_context(tf.io.gfile.GFile(named_temporary, "w"))
        batch = readers.input_tensors(inputs, reader, data_pattern, num_epochs=1, shuffle=False)
        fetches = model_graph.top_k_predictions(
            config, batch, top_k, precision, session_settings.xla
        )
        with tf.compat.v1.Session(config=session_settings.session_config()) as session:
            checkpoint = checkpoints.restore_latest(
                session, train_dir, config.models, checkpoint_path
            )
            for ids, indexes, scores in readers.run_to_end(session, fetches, reader, data_pattern):
                stream.write("".join(map(prediction_files.format_row, ids, indexes, scores)))
                if named is not None:
                    rows = zip(ids, indexes, scores, strict=True)
                    named.write(
                        "".join(prediction_files.format_named_row(*row, names) for row in rows)
                    )
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


def run_segment_inference(
    config,
    train_dir,
    data_pattern,
    output_file,
    classes,
    top_k=segment_metrics.DEFAULT_K,
    inputs=None,
    session_settings=None,
    checkpoint_path="",
    precision="float32",
):
    """Writes the Segments submission of the only model of `config` for the rated
    segments of `data_pattern`: per class of `classes`, its `top_k` segments."""
    inputs = inputs or dataclasses.replace(settings.EVALUATION_INPUT, segment_labels=True)
    session_settings = session_settings or settings.SessionSettings()
    reader = config.reader(segment_size=inputs.segments())
    ranked = segment_metrics.TopSegments(classes, top_k)
    with tf.Graph().as_default():
        batch = readers.input_tensors(inputs, reader, data_pattern, num_epochs=1, shuffle=False)
        fetches = model_graph.predictions(config, batch, precision, session_settings.xla)
        with tf.compat.v1.Session(config=session_settings.session_config()) as session:
            checkpoint = checkpoints.restore_latest(
                session, train_dir, config.models, checkpoint_path
            )
            for ids, scores in readers.run_to_end(session, fetches, reader, data_pattern):
                ranked.add(ids, scores)
    with (
        runtime.atomic_output(output_file) as temporary,
        tf.io.gfile.GFile(temporary, "w") as stream,
    ):
        stream.write(segment_metrics.SUBMISSION_HEADER + "\n")
        for c, segments in ranked.lists().items():
            stream.write(f"{c}," + " ".join(segment for segment, _ in segments) + "\n")
    logging.info(
        "Wrote the top %d of %d segments per class for %d classes (%s of %s) to %s",
        top_k,
        ranked.seen,
        len(classes),
        config.models[0],
        checkpoint,
        output_file,
    )
    return ranked.seen


def main(argv):
    # Only the scored model is built: a student reads only its own frames.
    config, _ = checkpoints.scored_run(command_line.requested_model(), FLAGS.train_dir)
    inputs = command_line.input_settings()
    if inputs.segment_labels:
        classes = FLAGS.segment_classes
        run_segment_inference(
            config,
            FLAGS.train_dir,
            FLAGS.input_data_pattern,
            FLAGS.output_file,
            segment_metrics.read_class_list(classes) if classes else range(config.num_classes),
            FLAGS.segment_top_k,
            inputs,
            command_line.session_settings(),
            FLAGS.checkpoint_path,
            FLAGS.precision,
        )
        return
    run_inference(
        config,
        FLAGS.train_dir,
        FLAGS.input_data_pattern,
        FLAGS.output_file,
        FLAGS.top_k,
        inputs,
        command_line.session_settings(),
        FLAGS.checkpoint_path,
        vocabulary.read_vocabulary(FLAGS.vocabulary) if FLAGS.vocabulary else None,
        FLAGS.named_output_file or named_output_path(FLAGS.output_file),
        FLAGS.precision,
    )


if __name__ == "__main__":
    runtime.run(main)
