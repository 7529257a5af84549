"""Extracts YouTube-8M frame-level features from video files, as the releases made
them, into TFRecords that every binary here reads as it reads the dataset.

Input: --input_videos_csv, lines `<video file>,<labels>` (labels `;`-joined class
ids, may be empty). Per video and per time step (1 per second by default, at most
--max_frames): `rgb`, the frame's Inception-v3 pool_3 values through the
YouTube-8M PCA, quantised to 1024 bytes; `audio`, VGGish's embedding of the 0.96 s
from that time through its PCA, quantised to 128 bytes; context `id` (the path as
the CSV writes it), `labels`, `mean_rgb` and `mean_audio`. The flags' names are
those of Google's extractor (extract_tfrecords_main.py).

Model files: --model_dir, downloaded there on first use (docs/video_features.md).
A video that cannot be used is named, skipped and listed in `<stem>.failed.csv`
beside the output; the exit status is 1 when any was. Output files appear whole,
and a re-run of the same command skips the shards already written. With
--beam_pipeline_options the same work runs as an Apache Beam pipeline
(docs/scale.md).
"""

import sys

from absl import flags, logging

from fewer_frames.config import command_line, settings
from fewer_frames.features import extraction, video_list
from fewer_frames.system import runtime
from fewer_frames.system.errors import UserError

command_line.define("dataset_version", "video_features", "graph_optimizer")
_DEFAULTS = settings.ExtractionSettings
flags.DEFINE_string(
    "input_videos_csv",
    None,
    "CSV of `<video file>,<labels>` lines. `-`: lines from standard input, each video's "
    "record written and flushed as it arrives (the models load once; one output file).",
)
flags.DEFINE_string("output_tfrecords_file", None, "TFRecord file to write.")
flags.DEFINE_integer(
    "videos_per_shard",
    0,
    "Videos per output file (0: one file); shards are named <stem>-00000-of-00004<extension>.",
)
flags.DEFINE_float(
    "frames_per_second", _DEFAULTS.frames_per_second, "Time steps per second of video."
)
flags.DEFINE_integer(
    "max_frames", _DEFAULTS.max_frames, "Time steps taken from the start of each video."
)
flags.mark_flags_as_required(["input_videos_csv", "output_tfrecords_file"])

FLAGS = flags.FLAGS


def main(argv):
    if FLAGS.frames_per_second <= 0 or FLAGS.max_frames <= 0 or FLAGS.frames_per_batch <= 0:
        raise UserError("--frames_per_second, --max_frames and --frames_per_batch must be > 0")
    if FLAGS.frame_alignment != "exact":
        raise UserError(
            "extract_features.py makes the features of every step, each from its exact frame: "
            "--frame_alignment=keyframe applies to a student's steps (inference.py "
            "--input_videos_csv with a student run)"
        )
    extraction_settings = command_line.extraction_settings()
    output = FLAGS.output_tfrecords_file
    if FLAGS.input_videos_csv == "-":
        if FLAGS.beam_pipeline_options or FLAGS.videos_per_shard:
            raise UserError(
                "--input_videos_csv=- writes one file in this process, not with "
                "--beam_pipeline_options or --videos_per_shard"
            )
        entries = video_list.stream_video_list(sys.stdin, FLAGS.dataset_version)
        report, seen = extraction.extract_stream(entries, output, extraction_settings)
        logging.info("Extracted %s", report.summary())
        failure = report.failure(seen)
        if failure:
            raise UserError(f"{failure}; the other {report.written} are in {output}")
        return
    entries = video_list.read_video_list(FLAGS.input_videos_csv, FLAGS.dataset_version)
    if FLAGS.beam_pipeline_options:
        from fewer_frames.pipelines import beam_videos  # noqa: PLC0415 (requirements-beam.txt)

        report = beam_videos.run_extraction(
            entries,
            output,
            extraction_settings,
            FLAGS.videos_per_shard,
            FLAGS.beam_pipeline_options,
        )
    else:
        report = extraction.extract(entries, output, extraction_settings, FLAGS.videos_per_shard)
        logging.info("Extracted %s", report.summary())
    failure = report.failure(len(entries))
    if failure:
        done = report.written + report.skipped
        raise UserError(f"{failure}; the other {done} are in {', '.join(report.files)}")


if __name__ == "__main__":
    runtime.run(main)
