"""The original TF 1.x teacher-student graph, rebuilt as the test oracle.

Run as a script in its own process with TF_USE_LEGACY_KERAS=1 (tf-keras
provides `tf.compat.v1.nn.rnn_cell`). It imports nothing of this project: the
model is built from the original's own classes (BasicLSTMCell with non-tuple
state in a non-tuple MultiRNNCell, one `dynamic_rnn` per chunk, the KL of
`tf.compat.v1.distributions.Categorical`), following the facts of
shared/reference/SPEC.md (sections 3-6 and 12).

It reads the videos of one frame-level TFRecord file (decoded here with numpy),
fills the graph with random weights (non-zero biases), and writes, as the
original code would have left them (checkpoints, no model_flags.json, an int32
global step):
- <output_dir>/teacher_student: every variable (both models, Adam slots);
- <output_dir>/student_only: the student and the global step (after the
  original's convert stage);
- <output_dir>/expected.npz: ids, predictions and representations of both
  models, and the original's losses on the whole file as one batch.
"""

import argparse
import math
import os

import numpy as np
import tensorflow as tf
from tensorflow.core.protobuf import rewriter_config_pb2

MAX_FRAMES = 300
FEATURES = (("rgb", 1024), ("audio", 128))


def read_videos(path, num_classes):
    """ids, video matrix [B, 300, 1152] (zero-padded), num_frames [B], labels [B, C]."""
    ids, matrices, counts, labels = [], [], [], []
    for record in tf.compat.v1.io.tf_record_iterator(path):
        example = tf.train.SequenceExample.FromString(record)
        ids.append(example.context.feature["id"].bytes_list.value[0])
        row = np.zeros(num_classes, np.float32)
        row[list(example.context.feature["labels"].int64_list.value)] = 1
        labels.append(row)
        streams = []
        for name, size in FEATURES:
            frames = example.feature_lists.feature_list[name].feature
            codes = np.stack(
                [np.frombuffer(frame.bytes_list.value[0], np.uint8) for frame in frames]
            )[:MAX_FRAMES]
            assert codes.shape[1] == size
            # Dequantisation with max 2, min -2, in float32 as the original's graph did.
            values = codes.astype(np.float32) * np.float32(4.0 / 255.0) + np.float32(
                4.0 / 512.0 - 2.0
            )
            streams.append(values)
        count = min(len(stream) for stream in streams)
        matrix = np.zeros((MAX_FRAMES, sum(size for _, size in FEATURES)), np.float32)
        matrix[:count] = np.concatenate([stream[:count] for stream in streams], axis=1)
        matrices.append(matrix)
        counts.append(count)
    return ids, np.stack(matrices), np.array(counts, np.int32), np.stack(labels)


def stacked_cell(units, layers):
    cells = [
        tf.compat.v1.nn.rnn_cell.BasicLSTMCell(units, forget_bias=1.0, state_is_tuple=False)
        for _ in range(layers)
    ]
    return tf.compat.v1.nn.rnn_cell.MultiRNNCell(cells, state_is_tuple=False)


def hierarchical_lstm(model_input, num_frames, num_chunks, units, layers):
    """The H-RNN: one dynamic_rnn per chunk (shared weights), one over the chunk states."""
    chunk = int(model_input.shape[1]) // num_chunks
    lower = stacked_cell(units, layers)
    chunk_states = []
    for index in range(num_chunks):
        length = tf.minimum(chunk, tf.maximum(0, num_frames - chunk * index))
        with tf.compat.v1.variable_scope("RNN_L1", reuse=index > 0):
            _, state = tf.compat.v1.nn.dynamic_rnn(
                lower,
                model_input[:, chunk * index : chunk * (index + 1), :],
                sequence_length=length,
                dtype=tf.float32,
            )
        chunk_states.append(state)
    upper_length = tf.cast(tf.math.ceil(tf.divide(num_frames, chunk)), tf.int32)
    with tf.compat.v1.variable_scope("RNN_L2"):
        _, state = tf.compat.v1.nn.dynamic_rnn(
            stacked_cell(units, layers),
            tf.stack(chunk_states, axis=1),
            sequence_length=upper_length,
            dtype=tf.float32,
        )
    return state


def moe(representation, num_classes, mixtures):
    """The starter code's MoeModel, variables under classifier/{gates,experts}."""
    size = int(representation.shape[1])
    gate_columns, expert_columns = num_classes * (mixtures + 1), num_classes * mixtures
    with tf.compat.v1.variable_scope("classifier"):
        with tf.compat.v1.variable_scope("gates"):
            gate_weights = tf.compat.v1.get_variable("weights", [size, gate_columns])
        with tf.compat.v1.variable_scope("experts"):
            expert_weights = tf.compat.v1.get_variable("weights", [size, expert_columns])
            expert_biases = tf.compat.v1.get_variable("biases", [expert_columns])
    # slim's l2_regularizer(1e-8) on both weight matrices: scale * l2_loss.
    for weights in (gate_weights, expert_weights):
        tf.compat.v1.add_to_collection(
            tf.compat.v1.GraphKeys.REGULARIZATION_LOSSES, 1e-8 * tf.nn.l2_loss(weights)
        )
    gates = tf.nn.softmax(tf.reshape(tf.matmul(representation, gate_weights), [-1, mixtures + 1]))
    experts = tf.nn.sigmoid(
        tf.reshape(tf.matmul(representation, expert_weights) + expert_biases, [-1, mixtures])
    )
    probabilities = tf.reduce_sum(gates[:, :mixtures] * experts, axis=1)
    return tf.reshape(probabilities, [-1, num_classes])


def cross_entropy(predictions, labels):
    epsilon = 10e-6
    loss = labels * tf.math.log(predictions + epsilon) + (1 - labels) * tf.math.log(
        1 - predictions + epsilon
    )
    return tf.reduce_mean(tf.reduce_sum(-loss, axis=1))


def build(args, num_classes):
    width = sum(size for _, size in FEATURES)
    video_matrix = tf.compat.v1.placeholder(tf.float32, [None, MAX_FRAMES, width])
    num_frames = tf.compat.v1.placeholder(tf.int32, [None])
    labels = tf.compat.v1.placeholder(tf.float32, [None, num_classes])
    global_step = tf.Variable(0, trainable=False, name="global_step")  # int32, as the original
    model_input = tf.nn.l2_normalize(video_matrix, 2)
    with tf.compat.v1.variable_scope("model"):
        teacher_state = hierarchical_lstm(
            model_input, num_frames, 20, args.lstm_cells, args.lstm_layers
        )
        teacher_predictions = moe(teacher_state, num_classes, args.moe_num_mixtures)
    # The student: frames 0, n, 2n, ... of the padded input, and the original's count.
    student_input = tf.gather(model_input, list(range(0, MAX_FRAMES, args.every_n)), axis=1)
    student_frames = tf.cast(
        tf.multiply(tf.divide(num_frames, MAX_FRAMES), int(MAX_FRAMES / args.every_n)), tf.int64
    )
    with tf.compat.v1.variable_scope("model_student"):
        student_state = hierarchical_lstm(
            student_input, tf.cast(student_frames, tf.int32), 5, args.lstm_cells, args.lstm_layers
        )
        student_predictions = moe(student_state, num_classes, args.moe_num_mixtures)

    rep_loss = tf.reduce_mean(tf.reduce_sum(tf.square(teacher_state - student_state), axis=1))
    pred_loss = tf.reduce_sum(
        tf.compat.v1.distributions.kl_divergence(
            tf.compat.v1.distributions.Categorical(probs=teacher_predictions),
            tf.compat.v1.distributions.Categorical(probs=student_predictions),
        )
    )
    teacher_ce = cross_entropy(teacher_predictions, labels)
    student_ce = cross_entropy(student_predictions, labels)
    penalty = args.regularization_penalty
    teacher_total = teacher_ce + penalty * tf.compat.v1.losses.get_regularization_loss("model/")
    # The original added L_rep twice.
    student_total = (
        rep_loss
        + pred_loss
        + student_ce
        + rep_loss
        + penalty * tf.compat.v1.losses.get_regularization_loss("model_student/")
    )
    # Both train ops step the global step (the original's slim.learning.create_train_op).
    for total, scope in ((teacher_total, "model/"), (student_total, "model_student/")):
        tf.compat.v1.train.AdamOptimizer(0.001).minimize(
            total, global_step=global_step, var_list=tf.compat.v1.trainable_variables(scope)
        )
    inputs = {"video_matrix": video_matrix, "num_frames": num_frames, "labels": labels}
    outputs = {
        "teacher_predictions": teacher_predictions,
        "student_predictions": student_predictions,
        "teacher_representation": teacher_state,
        "student_representation": student_state,
        "student_num_frames": student_frames,
        "rep_loss": rep_loss,
        "pred_loss": pred_loss,
        "teacher_ce_loss": teacher_ce,
        "ce_loss": student_ce,
        "teacher_total_loss": teacher_total,
        "student_total_loss": student_total,
    }
    return inputs, outputs, global_step


def randomize(session, seed, global_step, step):
    """Random weights, biases included (the LSTMs' start at zero otherwise), and
    the global step, set in one run (a run per variable took 14 s)."""
    rng = np.random.default_rng(seed)
    assigns, feed = [], {}
    for variable in tf.compat.v1.trainable_variables():
        shape = variable.shape.as_list()
        scale = 0.5 if "bias" in variable.op.name else 1.0 / math.sqrt(shape[0])
        value = tf.compat.v1.placeholder(tf.float32, shape)
        assigns.append(variable.assign(value))
        feed[value] = rng.uniform(-scale, scale, shape).astype(np.float32)
    value = tf.compat.v1.placeholder(global_step.dtype.base_dtype, [])
    assigns.append(global_step.assign(value))
    feed[value] = step
    session.run(assigns, feed)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", required=True)
    parser.add_argument("--output_dir", required=True)
    parser.add_argument("--num_classes", type=int, default=3862)
    parser.add_argument("--lstm_cells", type=int, default=16)
    parser.add_argument("--lstm_layers", type=int, default=2)
    parser.add_argument("--moe_num_mixtures", type=int, default=2)
    parser.add_argument("--every_n", type=int, default=10)
    parser.add_argument("--regularization_penalty", type=float, default=2.0)
    parser.add_argument("--global_step", type=int, default=40)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    tf.compat.v1.disable_eager_execution()
    # TF 1.x's while loops, as the original ran on (their gradients also build
    # in a fraction of the time of while_v2's).
    tf.compat.v1.disable_control_flow_v2()
    ids, matrices, counts, labels = read_videos(args.data, args.num_classes)
    inputs, outputs, global_step = build(args, args.num_classes)
    feed = {
        inputs["video_matrix"]: matrices,
        inputs["num_frames"]: counts,
        inputs["labels"]: labels,
    }
    # Without Grappler, which took seconds on this graph before each new run.
    rewrite = rewriter_config_pb2.RewriterConfig(disable_meta_optimizer=True)
    config = tf.compat.v1.ConfigProto(
        graph_options=tf.compat.v1.GraphOptions(rewrite_options=rewrite)
    )
    with tf.compat.v1.Session(config=config) as session:
        session.run(tf.compat.v1.global_variables_initializer())
        randomize(session, args.seed, global_step, args.global_step)
        values = session.run(outputs, feed)
        run_dir = os.path.join(args.output_dir, "teacher_student")
        tf.compat.v1.train.Saver().save(
            session, os.path.join(run_dir, "model.ckpt"), global_step=args.global_step
        )
        student_dir = os.path.join(args.output_dir, "student_only")
        student_variables = tf.compat.v1.global_variables("model_student/")
        student_variables = [v for v in student_variables if "Adam" not in v.op.name]
        tf.compat.v1.train.Saver(student_variables + [global_step]).save(
            session, os.path.join(student_dir, "model.ckpt"), global_step=args.global_step
        )
    np.savez(
        os.path.join(args.output_dir, "expected.npz"),
        ids=np.array(ids),
        num_frames=counts,
        **values,
    )


if __name__ == "__main__":
    main()
