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

from absl import flags

from fewer_frames.config import command_line, settings
from fewer_frames.evaluation import segment_metrics
from fewer_frames.inputs import vocabulary
from fewer_frames.run_dirs import run_directory
from fewer_frames.serving import batch_inference
from fewer_frames.system import runtime
from fewer_frames.system.errors import UserError

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
    "litert_model",
    "",
    "A LiteRT export (export_model.py --format=litert) to predict with instead of the run "
    "in --train_dir; needs requirements-litert.txt.",
)
flags.DEFINE_string(
    "named_output_file",
    "",
    "With --vocabulary: a JSON line per video (its id, its top classes with names and "
    "scores); empty: --output_file with .jsonl for .csv.",
)

FLAGS = flags.FLAGS


def main(argv):
    inputs = command_line.input_settings()
    names = vocabulary.read_vocabulary(FLAGS.vocabulary) if FLAGS.vocabulary else None
    named_output_file = FLAGS.named_output_file or batch_inference.named_output_path(
        FLAGS.output_file
    )
    if FLAGS.litert_model:
        if inputs.segment_labels:
            raise UserError("--litert_model predicts whole videos, not --segment_labels")
        batch_inference.run_litert_inference(
            FLAGS.litert_model,
            FLAGS.input_data_pattern,
            FLAGS.output_file,
            FLAGS.top_k,
            inputs,
            command_line.session_settings().intra_op_threads,
            names,
            named_output_file,
        )
        return
    # Only the scored model is built: a student reads only its own frames.
    config, _ = run_directory.scored_run(command_line.requested_model(), FLAGS.train_dir)
    if inputs.segment_labels:
        classes = FLAGS.segment_classes
        batch_inference.run_segment_inference(
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
    batch_inference.run_inference(
        config,
        FLAGS.train_dir,
        FLAGS.input_data_pattern,
        FLAGS.output_file,
        FLAGS.top_k,
        inputs,
        command_line.session_settings(),
        FLAGS.checkpoint_path,
        names,
        named_output_file,
        FLAGS.precision,
    )


if __name__ == "__main__":
    runtime.run(main)
