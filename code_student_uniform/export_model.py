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

from absl import flags

from fewer_frames.config import command_line
from fewer_frames.run_dirs import run_directory
from fewer_frames.serving import exports, litert_model
from fewer_frames.system import runtime
from fewer_frames.system.errors import UserError

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


def main(argv):
    config, _ = run_directory.scored_run(command_line.requested_model(), FLAGS.train_dir)
    if FLAGS.format == "saved_model":
        exports.saved_model(
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
        raise UserError(
            "--format=litert takes neither --precision nor --xla (LiteRT runs the model its "
            "own way; --quantize makes it smaller)"
        )
    representative = None
    if FLAGS.quantize == "full_integer":
        exports.checked_new(FLAGS.export_dir)  # before reading the calibration videos
        representative = litert_model.representative_batches(
            config,
            exports.calibration_data_pattern(FLAGS.train_dir, FLAGS.representative_data_pattern),
            FLAGS.representative_batches,
            FLAGS.batch_size,
        )
    exports.litert(
        config,
        FLAGS.train_dir,
        FLAGS.export_dir,
        FLAGS.quantize,
        FLAGS.checkpoint_path,
        representative,
    )


if __name__ == "__main__":
    runtime.run(main)
