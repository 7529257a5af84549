"""Speed and cost figures, printed and written as JSON.

--what=reader: videos/s and CPU microseconds per video of the readers'
  decoding, full (every frame) vs. the student's frames only, over several
  passes of --data_pattern (the first not counted). The first pass reads the
  records (up to --held_videos of them) and holds them in memory, so the
  `*_decode_*` figures time decoding alone. The `*_pipeline_*` figures time
  the whole input pipeline, TFRecord files read in every pass, and
  `read_only_*` its reading and batching alone: the floor both share.
--what=train_step: seconds per parallel teacher+student training step at the
  model flags' size on synthetic input, its FLOP/s, and the FLOP/s of a plain
  tf.matmul of similar shape measured in the same run.
--what=models: teacher and student (each in a process of its own) at the model
  flags' size (by default the paper's: 1024 cells, every 10th frame, 4716
  classes): parameters, FLOPs per video, model-only videos/s on synthetic
  input, end-to-end evaluation videos/s reading --data_pattern, peak memory,
  and the teacher/student ratios; --precision and --xla apply to both models.
--what=deploy: the scored model of the run in --train_dir (its student unless
  --eval_model) exported as a SavedModel in float32, with XLA and in bfloat16,
  and as LiteRT float32, dynamic-range int8 and full-integer int8 (calibrated on
  the run's training data), each measured in a process of its own on the same
  --deploy_videos of --data_pattern (benchmarks/deploy_benchmark.py): videos/s
  at --batch_size, latency per video at batch 1, peak memory, size on disk, GAP, top-20
  agreement with float32; and the run's teacher as a float32 SavedModel.
--what=features: seconds per minute of video of extract_features.py, split into
  decoding, the RGB network, the audio network and writing, on generated videos
  (benchmarks/feature_benchmark.py), and Inception-v3's multiply-adds per frame.
--what=videos: a generated video per keyframe interval classified from the file by
  the teacher (every second) and the student (its frames only), at the model
  flags' size: seconds of decoding, networks and model, frames decoded, and the
  student/teacher ratios (benchmarks/video_benchmark.py).
--what=beam: extract_features.py in this process and on Apache Beam's direct
  runner with 1 and 2 worker processes, on the same generated videos: videos/s,
  CPU seconds per video minute, the fixed cost of each apart, the ratios
  Beam/in-process, and CPU-hours per million 5-minute videos for the features of
  every second and for the student's sparse path (benchmarks/beam_benchmark.py).
--what=metrics: the evaluation loop's metrics (per-video work in the graph, the
  pooled ranking in numpy) on --metrics_videos of scores from a model that costs
  nothing, on one core: videos/s and GiB kept per million videos, peak included
  (benchmarks/metrics_benchmark.py).
--what=scale: the chief's start-up, one evaluation pass and one inference pass,
  each through its binary on generated data at --scale_fractions of the 2018
  frame-level sets (records of the real size): bytes read, read calls, peak
  memory and wall time, extrapolated to the full dataset beside a storage model
  (benchmarks/scale_benchmark.py).

--what=frame_shift: the student of --train_dir scored on --data_pattern with its
  frames taken one step early, late, and shifted at random (-1..1 per frame,
  --frame_shift_seeds seeds): GAP, Hit@1 and top-20 agreement with the unshifted
  student, what --frame_alignment=keyframe may cost (benchmarks/frame_shift_benchmark.py).

FLOPs are counted analytically (fewer_frames/models/flops.py).
"""

import dataclasses
import json
import os
import sys

import tensorflow as tf
from absl import flags

from fewer_frames.benchmarks import (
    beam_benchmark,
    benchmark_modes,
    feature_benchmark,
    frame_shift_benchmark,
    metrics_benchmark,
    scale_benchmark,
    stand_in_models,
    video_benchmark,
)
from fewer_frames.config import command_line
from fewer_frames.system import filesystem, runtime

command_line.define(*command_line.RUN_TOPICS, "training", "precision", "checkpoint")
flags.DEFINE_enum(
    "what",
    "reader",
    [
        "reader",
        "train_step",
        "models",
        "one_model",
        "memory",
        "deploy",
        "one_deployment",
        "features",
        "videos",
        "beam",
        "metrics",
        "scale",
        "frame_shift",
    ],
    "What to measure (memory: computed, see models/memory_estimate.py).",
)
flags.DEFINE_enum("role", "teacher", ["teacher", "student"], "one_model: which model.")
flags.DEFINE_integer(
    "frame_shift_seeds", 3, "frame_shift: seeds of the random shifts (2 or more, for a spread)."
)
flags.DEFINE_integer("model_batches", 3, "models: timed batches of each measurement.")
flags.DEFINE_string("output_json", "", "Write the figures to this JSON file.")
flags.DEFINE_list(
    "gpu_memory_gb",
    ["16", "24", "40", "80", "141"],
    "memory: device sizes (GiB) to fit a batch in.",
)
flags.DEFINE_string("data_pattern", "./yt8m/train*.tfrecord", "reader, models: TFRecords to read.")
flags.DEFINE_integer("passes", 20, "reader: passes over the files (the first is warm-up).")
flags.DEFINE_integer(
    "held_videos",
    2048,
    "reader: records held in memory for the *_decode figures (~700 MB at most).",
)
flags.DEFINE_integer("steps", 3, "train_step: timed steps (after one warm-up step).")
flags.DEFINE_integer("deploy_videos", 512, "deploy: videos of --data_pattern measured.")
flags.DEFINE_integer(
    "latency_videos", 64, "deploy: videos predicted one at a time for the latency."
)
flags.DEFINE_integer(
    "representative_batches",
    4,
    "deploy: batches of the run's training data the full-integer model calibrates on.",
)
flags.DEFINE_string("deployment", "", "one_deployment: the export to measure.")
flags.DEFINE_enum(
    "deployment_format", "saved_model", ["saved_model", "litert"], "one_deployment: its format."
)
flags.DEFINE_string("held_records", "", "one_deployment: the TFRecord file of the videos.")
_FEATURES = benchmark_modes.BenchmarkOptions
flags.DEFINE_string(
    "feature_model_dir",
    _FEATURES.feature_model_dir,
    "features, videos: the release's model files (empty or incomplete: stand-ins of their cost).",
)
flags.DEFINE_enum(
    "feature_network",
    _FEATURES.feature_network,
    sorted(stand_in_models.NETWORKS),
    "features, videos: the stand-in Inception (inception_v3: the real architecture).",
)
flags.DEFINE_enum(
    "vggish_size",
    _FEATURES.vggish_size,
    sorted(stand_in_models.VGGISH_WIDTHS),
    "features, videos: the stand-in VGGish's widths.",
)
flags.DEFINE_integer("feature_videos", _FEATURES.feature_videos, "features: videos generated.")
flags.DEFINE_float(
    "feature_video_seconds", _FEATURES.feature_video_seconds, "features: length of each video."
)
flags.DEFINE_integer("video_width", _FEATURES.video_width, "features, videos: picture width.")
flags.DEFINE_integer("video_height", _FEATURES.video_height, "features, videos: picture height.")
flags.DEFINE_integer(
    "video_frames_per_second",
    _FEATURES.video_frames_per_second,
    "features, videos: the videos' rate.",
)
flags.DEFINE_float(
    "keyframe_seconds", _FEATURES.keyframe_seconds, "features: seconds between keyframes."
)
flags.DEFINE_integer(
    "frames_per_batch", _FEATURES.frames_per_batch, "features, videos: frames per Inception batch."
)
flags.DEFINE_float("video_seconds", _FEATURES.video_seconds, "videos: length of each video.")
flags.DEFINE_list(
    "video_keyframe_intervals",
    list(_FEATURES.video_keyframe_intervals),
    "videos: a video per keyframe interval (seconds).",
)
flags.DEFINE_integer(
    "videos_per_path",
    _FEATURES.videos_per_path,
    "videos: times each video is classified by each model (figures are per video).",
)

flags.DEFINE_integer(
    "metrics_videos", _FEATURES.metrics_videos, "metrics: videos scored (at --batch_size)."
)

flags.DEFINE_list(
    "scale_fractions",
    list(_FEATURES.scale_fractions),
    "scale: fractions of the 2018 frame-level data measured (a line through them extrapolates).",
)
flags.DEFINE_list(
    "scale_frames",
    list(_FEATURES.scale_frames),
    "scale: fewest and most frames per generated video (128,300: the real 249 KB per record).",
)
flags.DEFINE_list(
    "scale_stages",
    list(_FEATURES.scale_stages),
    "scale: the stages measured, of startup,evaluation,inference (the passes need startup's run).",
)
flags.DEFINE_float(
    "storage_latency_ms", _FEATURES.storage_latency_ms, "scale: storage model, per read call."
)
flags.DEFINE_float(
    "storage_bandwidth_mb_s",
    _FEATURES.storage_bandwidth_mb_s,
    "scale: storage model, MB/s of one stream.",
)

FLAGS = flags.FLAGS


def options_from_flags():
    """The benchmark's flags, read once."""
    own = {field.name for field in dataclasses.fields(benchmark_modes.BenchmarkOptions)}
    return benchmark_modes.BenchmarkOptions(
        requested=command_line.requested_model(),
        session=command_line.session_settings(),
        run=command_line.run_settings(),
        binary=os.path.abspath(__file__),
        args=tuple(sys.argv[1:]),
        given=frozenset(name for name in FLAGS if FLAGS[name].present),
        **{name: FLAGS[name].value for name in own if name in FLAGS},
    )


def main(argv):
    options = options_from_flags()
    figures = {
        "reader": benchmark_modes.bench_reader,
        "train_step": benchmark_modes.bench_train_step,
        "models": benchmark_modes.bench_models,
        "one_model": benchmark_modes.bench_one_model,
        "deploy": benchmark_modes.bench_deploy,
        "one_deployment": benchmark_modes.bench_one_deployment,
        "memory": benchmark_modes.bench_memory,
        "features": feature_benchmark.bench_features,
        "videos": video_benchmark.bench_videos,
        "beam": beam_benchmark.bench_beam,
        "metrics": metrics_benchmark.bench_metrics,
        "scale": scale_benchmark.bench_scale,
        "frame_shift": frame_shift_benchmark.bench_frame_shift,
    }[FLAGS.what](options)
    figures.setdefault("towers", 1)
    figures["devices"] = [
        f"{device.device_type}:{name}"
        for device in tf.config.list_physical_devices()
        for name in [device.name.rsplit(":", 1)[-1]]
    ]
    gpus = tf.config.list_physical_devices("GPU")
    figures["gpus"] = [tf.config.experimental.get_device_details(gpu) for gpu in gpus]
    text = json.dumps(figures, indent=2, sort_keys=True)
    print(text)
    if FLAGS.output_json:
        filesystem.write_json(FLAGS.output_json, figures)


if __name__ == "__main__":
    runtime.run(main)
