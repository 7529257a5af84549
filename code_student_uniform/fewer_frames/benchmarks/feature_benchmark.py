"""benchmark.py --what=features: where the time of extract_features.py goes.

Writes --feature_videos generated videos (H.264 at --video_width x --video_height,
--video_frames_per_second, a keyframe every --keyframe_seconds, AAC stereo, a
textured picture that changes every second), extracts them through the same code
as extract_features.py, and prints the seconds per minute of video spent in
decoding, the RGB network (Inception-v3 and PCA), the audio (log-mel, VGGish and
PCA) and writing, beside the wall time (the stages overlap). With the release's
files in --feature_model_dir they are used; otherwise stand-ins of the real
architectures and cost with random weights (benchmarks/stand_in_models.py). The
Inception graph's multiply-adds per frame are counted from its convolutions and
matrix products and compared with the architecture's known 5.7 billion.
"""

import os
import tempfile
import time

import numpy as np
import tensorflow as tf

from fewer_frames.benchmarks import generated_videos, stand_in_models
from fewer_frames.config.settings import ExtractionSettings
from fewer_frames.features import extraction, inception, model_files, video_list
from fewer_frames.models import model_config

KNOWN_INCEPTION_MULTIPLY_ADDS = 5.7e9
TOLERANCE = 0.05


def multiply_adds_per_frame(graph_def):
    """Multiply-adds of the graph's Conv2D and MatMul ops for one 299x299 frame,
    from their shapes once the scaled frame enters where the graph makes it."""
    total = 0
    with tf.Graph().as_default() as graph:
        scaled = tf.compat.v1.placeholder(tf.float32, [1, 299, 299, 3])
        tf.import_graph_def(graph_def, input_map={"Mul:0": scaled}, name="")
        for operation in graph.get_operations():
            if operation.type == "Conv2D":
                kernel = operation.inputs[1].shape.as_list()
                output = operation.outputs[0].shape.as_list()
                total += np.prod(output) * np.prod(kernel[:3])
            elif operation.type == "MatMul":
                rows, inner = operation.inputs[0].shape.as_list()
                total += rows * inner * operation.outputs[0].shape.as_list()[1]
    return int(total)


def stand_in_or_real_models(options, folder):
    """(model dir, what it holds): the release's files where all are in
    --feature_model_dir, else stand-ins written into `folder`."""
    names = model_files.RGB_FILES + model_files.AUDIO_FILES
    given = options.feature_model_dir
    if given and all(tf.io.gfile.exists(model_files.model_path(given, name)) for name in names):
        return given, "the files in --feature_model_dir"
    model_dir = os.path.join(folder, "models")
    stand_in_models.write_rgb_files(model_dir, options.feature_network)
    stand_in_models.write_audio_files(model_dir, options.vggish_size)
    return model_dir, (
        f"stand-ins with random weights: Inception {options.feature_network}, "
        f"VGGish {options.vggish_size}"
    )


def write_benchmark_video(
    options, path, seconds, keyframe_seconds, keyframe_phase=0.0, seed=0, scene_seconds=1
):
    """A generated video at the benchmark flags' size and rate, textured so that
    the encoder has real detail to code, a new scene every `scene_seconds`."""
    generated_videos.write_video(
        path,
        seconds,
        width=options.video_width,
        height=options.video_height,
        frames_per_second=options.video_frames_per_second,
        keyframe_seconds=keyframe_seconds,
        keyframe_phase=keyframe_phase,
        texture=True,
        seed=seed,
        scene_seconds=scene_seconds,
    )


def extraction_settings(options, model_dir):
    return ExtractionSettings(
        model_config.ModelConfig.dataset_version,
        model_dir=model_dir,
        frames_per_batch=options.frames_per_batch,
    )


def bench_features(options):
    with tempfile.TemporaryDirectory() as folder:
        model_dir, models = stand_in_or_real_models(options, folder)
        entries = []
        started = time.perf_counter()
        for index in range(options.feature_videos):
            path = os.path.join(folder, f"video{index}.mp4")
            seconds, keyframes = options.feature_video_seconds, options.keyframe_seconds
            write_benchmark_video(options, path, seconds, keyframes, seed=index)
            entries.append(video_list.VideoEntry(index + 1, path, (1,)))
        writing_videos = time.perf_counter() - started
        settings = extraction_settings(options, model_dir)
        report = extraction.extract(entries, os.path.join(folder, "out.tfrecord"), settings)
        multiply_adds = multiply_adds_per_frame(inception.load_graph_def(model_dir))
    minutes = report.video_seconds / 60.0
    per_minute = {
        "decode": report.decode_seconds / minutes,
        "rgb_network": report.rgb_seconds / minutes,
        "audio_network": report.audio_seconds / minutes,
        "writing": report.write_seconds / minutes,
        "wall": report.wall_seconds / minutes,
    }
    deviation = multiply_adds / KNOWN_INCEPTION_MULTIPLY_ADDS - 1
    return {
        "what": "features",
        "models": models,
        "videos": report.written,
        "video_seconds": report.video_seconds,
        "video": {
            "width": options.video_width,
            "height": options.video_height,
            "frames_per_second": options.video_frames_per_second,
            "keyframe_seconds": options.keyframe_seconds,
        },
        "frames_decoded": report.frames_decoded,
        "frames_embedded": report.frames_embedded,
        "frames_per_batch": options.frames_per_batch,
        "seconds_per_minute_of_video": per_minute,
        "inception_multiply_adds_per_frame": multiply_adds,
        "known_inception_multiply_adds": KNOWN_INCEPTION_MULTIPLY_ADDS,
        "multiply_adds_deviation": deviation,
        "multiply_adds_within_5_percent": abs(deviation) <= TOLERANCE,
        "seconds_writing_the_videos": writing_videos,
    }
