"""Writes a small, deterministic, learnable sample of frame-level YouTube-8M data.

The files have the exact YouTube-8M frame-level format: one `SequenceExample`
per video with context `id` (`video_id` for --dataset_version=2017) and
`labels`, and feature lists `rgb` (1024 uint8 per frame) and `audio` (128 uint8
per frame). Splits: train*, validate* and test* (test records carry no labels).

How the content is made, so that a model can learn it and a teacher that sees
every frame has an edge over a student that sees every n-th frame:
- a few "active" classes, spread over the full id range, each with its own
  random rgb and audio pattern; label frequencies fall off with class rank;
- every frame is a per-video background plus noise; a label adds its class
  pattern to the frames where it happens: "global" classes in every frame,
  "burst" classes only in one or two short bursts of a few frames, which
  a sparse sample of frames often misses;
- lengths vary: a few videos of 1-10 frames, most of 100-300, some above 300
  (the readers cap them at 300).
With --segments it also writes segments_{train,validate,test}0000.tfrecord in the
2019 Segments format: each video's context adds `segment_start_times`,
`segment_labels` and `segment_scores` (test: none), rating 5-frame segments
(starts at multiples of 5) of its classes: 1 where the class happens in the
segment (everywhere for a global class, only in its bursts for a burst class),
0 elsewhere, and a few 0 ratings of classes the video does not have.
The same flags give the same bytes on every run.
"""

import json
import sys

from absl import app, flags, logging

from fewer_frames.config import command_line
from fewer_frames.inputs import sample_data

command_line.define("data")
flags.DEFINE_string("output_dir", "yt8m", "Folder to write the TFRecords into.")
flags.DEFINE_integer("seed", 2019, "Seed of everything random in the sample.")
flags.DEFINE_integer("num_active_classes", 24, "How many classes occur in the sample.")
flags.DEFINE_integer("num_train_files", 4, "Number of train*.tfrecord files.")
flags.DEFINE_integer("num_validate_files", 2, "Number of validate*.tfrecord files.")
flags.DEFINE_integer("num_test_files", 1, "Number of test*.tfrecord files (no labels).")
flags.DEFINE_integer("videos_per_file", 200, "Videos in each file.")
flags.DEFINE_integer("max_video_frames", 360, "Longest video written (above 300 tests the cap).")
flags.DEFINE_bool("segments", False, "Also write segment-rated records (2019 format).")

FLAGS = flags.FLAGS


def main(argv):
    if len(argv) > 1:
        sys.exit(f"make_sample_data.py: unexpected arguments {argv[1:]}")
    manifest = sample_data.make_sample(
        FLAGS.output_dir,
        dataset_version=FLAGS.dataset_version,
        seed=FLAGS.seed,
        num_active_classes=FLAGS.num_active_classes,
        num_train_files=FLAGS.num_train_files,
        num_validate_files=FLAGS.num_validate_files,
        num_test_files=FLAGS.num_test_files,
        videos_per_file=FLAGS.videos_per_file,
        max_video_frames=FLAGS.max_video_frames,
        segments=FLAGS.segments,
    )
    logging.info("Wrote sample to %s: %s", FLAGS.output_dir, json.dumps(manifest["splits"]))


if __name__ == "__main__":
    app.run(main)
