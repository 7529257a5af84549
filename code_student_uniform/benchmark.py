"""Speed and cost figures, printed and written as JSON.

--what=reader: videos/s of the input pipeline, full decode vs. the student's
  frames only, over several passes of --data_pattern (the first not counted).
--what=train_step: seconds per parallel teacher+student training step at the
  model flags' size on synthetic input, its FLOP/s, and the FLOP/s of a plain
  tf.matmul of similar shape measured in the same run.

FLOPs are counted analytically from the matmul shapes of the model (2 per
multiply-add; elementwise ops are left out); a training step is counted as
3x the forward pass (forward, and backward for activations and weights).
"""

import json
import time

import numpy as np
import tensorflow as tf
from absl import flags, logging

import model_graph
import readers
import runtime
import training

flags.DEFINE_enum("what", "reader", ["reader", "train_step"], "What to measure.")
flags.DEFINE_string("output_json", "", "Write the figures to this JSON file.")
flags.DEFINE_string("data_pattern", "./yt8m/train*.tfrecord", "reader: files to read.")
flags.DEFINE_integer("passes", 8, "reader: passes over the files (the first is warm-up).")
flags.DEFINE_integer("steps", 3, "train_step: timed steps (after one warm-up step).")
flags.DEFINE_bool(
    "fold_chunks", True, "train_step: run the H-LSTM's chunks as one batched recurrence."
)

FLAGS = flags.FLAGS


def _lstm_flops(input_size, units, layers):
    """Forward matmul FLOPs of one step of a stacked LSTM."""
    flops = 0
    for layer in range(layers):
        layer_input = input_size if layer == 0 else units
        flops += 2 * (layer_input + units) * 4 * units
    return flops


def _classifier_flops(config, representation_size):
    params = config.model_params
    if params["classifier_name"] == "MoeModel":
        mixtures = params["num_mixtures"]
        return 2 * representation_size * config.num_classes * (2 * mixtures + 1)
    return 2 * representation_size * config.num_classes


def forward_flops_per_video(config, student):
    """Analytic forward FLOPs of one video through the teacher or the student."""
    params = config.model_params
    units, layers = params["lstm_size"], params["num_layers"]
    frames = config.selection().num_frames if student else config.max_frames
    width = sum(config.feature_sizes)
    if config.model == "HierarchicalLstmModel":
        chunks = params["student_num_chunks"] if student else params["num_chunks"]
        state = 2 * layers * units
        flops = frames * _lstm_flops(width, units, layers) + chunks * _lstm_flops(
            state, units, layers
        )
        return flops + _classifier_flops(config, state)
    if config.model == "LstmModel":
        state = 2 * layers * units
        return frames * _lstm_flops(width, units, layers) + _classifier_flops(config, state)
    raise runtime.UserError(f"no FLOP count for --model={config.model}")


def _count_records(pattern):
    with tf.Graph().as_default():
        files = readers.match_files(pattern)
        count = tf.data.TFRecordDataset(files).reduce(np.int64(0), lambda total, _: total + 1)
        with tf.compat.v1.Session() as session:
            return int(session.run(count))


def _decode_rate(reader, pattern, passes, batch_size):
    """Videos/s of one pipeline over `passes` epochs, timed after the first epoch."""
    per_pass = _count_records(pattern)
    with tf.Graph().as_default():
        pipeline = readers.get_input_data_tensors(
            reader,
            pattern,
            batch_size=batch_size,
            num_epochs=passes,
            shuffle=False,
            num_readers=FLAGS.num_readers,
        )["video_matrix"]
        # Fetch a scalar: the decoding runs in full, the copy out of TF is left out.
        checksum = tf.reduce_sum(pipeline[:, 0, 0])
        size = tf.shape(pipeline)[0]
        with tf.compat.v1.Session(config=runtime.session_config()) as session:
            videos, timed, start = 0, 0, None
            while True:
                try:
                    count, _ = session.run([size, checksum])
                except tf.errors.OutOfRangeError:
                    break
                videos += count
                if start is not None:
                    timed += count
                elif videos >= per_pass:
                    start = time.time()
    return timed / (time.time() - start), per_pass


def bench_reader():
    config = model_graph.ModelConfig.from_flags(["student"])
    passes = max(FLAGS.passes, 2)
    student, num_videos = _decode_rate(
        config.reader(), FLAGS.data_pattern, passes, FLAGS.batch_size
    )
    full, _ = _decode_rate(
        config.with_models(["teacher"]).reader(), FLAGS.data_pattern, passes, FLAGS.batch_size
    )
    return {
        "full_decode_videos_per_s": full,
        "student_decode_videos_per_s": student,
        "student_to_full_ratio": student / full,
        "num_videos": num_videos,
        "student_frames": config.selection().num_frames,
        "passes_counted": passes - 1,
        "batch_size": FLAGS.batch_size,
        "data_pattern": FLAGS.data_pattern,
    }


def _synthetic_batch(config, batch_size):
    rng = np.random.default_rng(0)
    width = sum(config.feature_sizes)
    frames = rng.uniform(-1, 1, (batch_size, config.max_frames, width)).astype(np.float32)
    labels = rng.random((batch_size, config.num_classes)) < 3 / config.num_classes
    return {
        "video_ids": tf.constant([b"v"] * batch_size),
        "video_matrix": tf.Variable(frames, trainable=False, name="bench_frames"),
        "labels": tf.constant(labels.astype(np.float32)),
        "num_frames": tf.constant(np.full(batch_size, config.max_frames, np.int32)),
    }


def _matmul_rate(session, rows, inner, columns, repeats=10):
    with tf.compat.v1.variable_scope("bench_matmul"):
        left = tf.Variable(tf.random.uniform([rows, inner]), trainable=False)
        right = tf.Variable(tf.random.uniform([inner, columns]), trainable=False)
        product = tf.reduce_sum(tf.matmul(left, right))
    session.run([left.initializer, right.initializer])
    session.run(product)
    start = time.time()
    for _ in range(repeats):
        session.run(product)
    return 2 * rows * inner * columns * repeats / (time.time() - start)


def bench_train_step():
    config = model_graph.ModelConfig.from_flags(["teacher", "student"])
    if config.model == "HierarchicalLstmModel":
        config.model_params["fold_chunks"] = FLAGS.fold_chunks
    batch_size = FLAGS.batch_size if FLAGS["batch_size"].present else 32
    FLAGS.batch_size = batch_size
    with tf.Graph().as_default():
        graph = training.build_training_graph(
            config, "parallel", _synthetic_batch(config, batch_size)
        )
        with tf.compat.v1.Session(config=runtime.session_config()) as session:
            session.run(tf.compat.v1.global_variables_initializer())
            logging.info("warm-up step")
            session.run(graph["train_op"])
            start = time.time()
            for step in range(FLAGS.steps):
                session.run(graph["train_op"])
                logging.info("timed step %d done", step + 1)
            step_seconds = (time.time() - start) / FLAGS.steps
            units = config.model_params["lstm_size"]
            chunk_rows = batch_size * config.model_params["num_chunks"]
            matmul_rate = _matmul_rate(session, chunk_rows, 2 * units, 4 * units)
    flops = (
        3
        * batch_size
        * (
            forward_flops_per_video(config, student=False)
            + forward_flops_per_video(config, student=True)
        )
    )
    return {
        "step_seconds": step_seconds,
        "train_flops_per_step": flops,
        "train_flops_per_s": flops / step_seconds,
        "matmul_flops_per_s": matmul_rate,
        "matmul_shape": [chunk_rows, 2 * units, 4 * units],
        "ratio_to_matmul": flops / step_seconds / matmul_rate,
        "batch_size": batch_size,
        "lstm_cells": units,
        "flops_counted": "analytic (matmuls; training = 3 x forward)",
        "fold_chunks": FLAGS.fold_chunks,
    }


def main(argv):
    figures = {"reader": bench_reader, "train_step": bench_train_step}[FLAGS.what]()
    text = json.dumps(figures, indent=2, sort_keys=True)
    print(text)
    if FLAGS.output_json:
        runtime.write_json(FLAGS.output_json, figures)


if __name__ == "__main__":
    runtime.run(main)
