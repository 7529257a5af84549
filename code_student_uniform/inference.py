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

import sys

from absl import flags, logging

from fewer_frames.config import command_line, settings
from fewer_frames.evaluation import segment_metrics
from fewer_frames.features import extraction, output_shards, video_list
from fewer_frames.inputs import vocabulary
from fewer_frames.run_dirs import run_directory
from fewer_frames.serving import batch_inference, litert_model, video_inference
from fewer_frames.system import runtime
from fewer_frames.system.errors import UserError

command_line.define(
    *command_line.RUN_TOPICS,
    "checkpoint",
    "vocabulary",
    "segments",
    "precision",
    "video_features",
    batch_size=settings.EVALUATION_BATCH_SIZE,
)
flags.DEFINE_string("input_data_pattern", "./yt8m/test*.tfrecord", "Videos to predict (glob).")
flags.DEFINE_string(
    "input_videos_csv",
    "",
    "Video files to classify instead of records: a CSV of `<video file>,<labels>` lines "
    "(extract_features.py's); their features are made with --model_dir's files, only "
    "for the frames the model sees. `-`: lines from standard input, each video "
    "classified and its row written and flushed as it arrives (the models load once).",
)
flags.DEFINE_string("input_videos", "", "Video files to classify (glob), as --input_videos_csv.")
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
    if not (FLAGS.input_videos_csv or FLAGS.input_videos):
        _predict(FLAGS.input_data_pattern)
        return
    if FLAGS.input_videos_csv and FLAGS.input_videos:
        raise UserError("give --input_videos_csv or --input_videos, not both")
    if FLAGS.segment_labels:
        raise UserError("video files are classified whole, not by --segment_labels")
    if FLAGS.litert_model:
        config = litert_model.read_config(FLAGS.litert_model)
    else:
        config, _ = run_directory.scored_run(command_line.requested_model(), FLAGS.train_dir)
    extraction_settings = command_line.extraction_settings()
    dead_letter = output_shards.dead_letter_path(FLAGS.output_file)
    streaming = FLAGS.input_videos_csv == "-"
    if streaming and (FLAGS.beam_pipeline_options or FLAGS.litert_model):
        raise UserError(
            "--input_videos_csv=- classifies in this process with a run (--train_dir), "
            "not with --beam_pipeline_options or --litert_model"
        )
    if streaming:
        entries = video_list.stream_video_list(sys.stdin, config.dataset_version)
    elif FLAGS.input_videos_csv:
        entries = video_list.read_video_list(FLAGS.input_videos_csv, config.dataset_version)
    else:
        entries = video_list.glob_video_list(FLAGS.input_videos)
    if FLAGS.beam_pipeline_options:
        predicted, failed = _predict_on_beam(config, entries, extraction_settings, dead_letter)
        total = len(entries)
    elif FLAGS.litert_model:
        with video_inference.records_of_videos(
            config, entries, extraction_settings, dead_letter
        ) as records:
            pattern, report = records
            _predict(pattern)
        predicted, failed, total = report.written, len(report.failed), len(entries)
    else:
        report, total, _ = video_inference.classify_videos(
            config,
            entries,
            extraction_settings,
            _prediction(dead_letter),
            command_line.session_settings(),
            streaming,
        )
        predicted, failed = report.written, len(report.failed)
    failure = extraction.failure(failed, total, dead_letter)
    if failure:
        raise UserError(f"{failure}; the predictions of the other {predicted} are written")


def _predict_on_beam(config, entries, extraction_settings, dead_letter):
    """The videos' predictions by a Beam pipeline; returns (predicted, failed)."""
    if FLAGS.litert_model:
        raise UserError(
            "--beam_pipeline_options predicts with a run (--train_dir), not a LiteRT model"
        )
    from fewer_frames.pipelines import beam_videos  # noqa: PLC0415 (requirements-beam.txt)

    counters = beam_videos.run_inference(
        entries,
        video_inference.video_settings(config, extraction_settings),
        config,
        _prediction(dead_letter),
        FLAGS.beam_pipeline_options,
    )
    logging.info(
        "Wrote the predictions of %d videos to %s",
        counters["videos"] - counters["failed"],
        FLAGS.output_file,
    )
    return counters["videos"] - counters["failed"], counters["failed"]


def _prediction(dead_letter):
    """What the video paths that predict one video at a time need of the flags."""
    return {
        "train_dir": FLAGS.train_dir,
        "top_k": FLAGS.top_k,
        "checkpoint_path": FLAGS.checkpoint_path,
        "precision": FLAGS.precision,
        "output_file": FLAGS.output_file,
        "names": vocabulary.read_vocabulary(FLAGS.vocabulary) if FLAGS.vocabulary else None,
        "named_output_file": FLAGS.named_output_file
        or batch_inference.named_output_path(FLAGS.output_file),
        "dead_letter": dead_letter,
    }


def _predict(data_pattern):
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
            data_pattern,
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
            data_pattern,
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
        data_pattern,
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
