"""Models: variable names and shapes, LSTM math, masking, folding, registry."""

import dataclasses
import time

import numpy as np
import pytest
import tensorflow as tf

from fewer_frames.inputs import frame_selection
from fewer_frames.models import base_model, frame_level_models, video_level_models
from fewer_frames.system.errors import UserError
from testlib import run_session

SPEC_SHAPES = {
    "RNN_L1/rnn/multi_rnn_cell/cell_0/basic_lstm_cell/kernel": [1152 + 1024, 4096],
    "RNN_L1/rnn/multi_rnn_cell/cell_0/basic_lstm_cell/bias": [4096],
    "RNN_L1/rnn/multi_rnn_cell/cell_1/basic_lstm_cell/kernel": [2048, 4096],
    "RNN_L1/rnn/multi_rnn_cell/cell_1/basic_lstm_cell/bias": [4096],
    "RNN_L2/rnn/multi_rnn_cell/cell_0/basic_lstm_cell/kernel": [4096 + 1024, 4096],
    "RNN_L2/rnn/multi_rnn_cell/cell_0/basic_lstm_cell/bias": [4096],
    "RNN_L2/rnn/multi_rnn_cell/cell_1/basic_lstm_cell/kernel": [2048, 4096],
    "RNN_L2/rnn/multi_rnn_cell/cell_1/basic_lstm_cell/bias": [4096],
    "classifier/gates/weights": [4096, 4716 * 3],
    "classifier/experts/weights": [4096, 4716 * 2],
    "classifier/experts/biases": [4716 * 2],
}


def build_teacher_and_student(model, model_input, num_frames, vocab_size, selection, **params):
    with tf.compat.v1.variable_scope("model"):
        teacher = model.create_model(model_input, vocab_size, num_frames, **params)
    student_input, student_frames = frame_selection.select_frames(
        model_input, num_frames, selection
    )
    with tf.compat.v1.variable_scope("model_student"):
        student = model.create_student(student_input, vocab_size, student_frames, **params)
    # (representation, outputs) of each
    return (teacher["representation"], teacher), (student["representation"], student)


def test_full_size_variable_names_and_shapes():
    start = time.time()
    model_input = tf.compat.v1.placeholder(tf.float32, [None, 300, 1152])
    num_frames = tf.compat.v1.placeholder(tf.int32, [None])
    (teacher_rep, teacher_out), (student_rep, student_out) = build_teacher_and_student(
        frame_level_models.HierarchicalLstmModel(),
        model_input,
        num_frames,
        4716,
        frame_selection.FrameSelection("uniform", every_n=10, num_student_frames=0),
    )
    for scope in ("model", "model_student"):
        found = {
            var.op.name[len(scope) + 1 :]: var.shape.as_list()
            for var in tf.compat.v1.trainable_variables()
            if var.op.name.startswith(scope + "/")
        }
        assert found == SPEC_SHAPES, scope
    assert teacher_rep.shape.as_list() == [None, 4096] == student_rep.shape.as_list()
    assert teacher_out["predictions"].shape.as_list() == [None, 4716]
    assert student_out["predictions"].shape.as_list() == [None, 4716]
    params = sum(np.prod(shape) for shape in SPEC_SHAPES.values())
    print(f"parameters per model: {params}; build seconds: {time.time() - start:.1f}")


def numpy_lstm(inputs, lengths, kernels, biases, forget_bias=1.0):
    """Step-by-step BasicLSTMCell stack; returns the non-tuple final state."""
    batch = inputs.shape[0]
    layer_input = inputs
    states = []
    for kernel, bias in zip(kernels, biases, strict=True):
        units = bias.shape[0] // 4
        c = np.zeros((batch, units))
        h = np.zeros((batch, units))
        outputs = np.zeros((batch, inputs.shape[1], units))
        for t in range(inputs.shape[1]):
            gates = np.concatenate([layer_input[:, t], h], axis=1) @ kernel + bias
            i, j, f, o = np.split(gates, 4, axis=1)
            sig = lambda x: 1 / (1 + np.exp(-x))  # noqa: E731
            new_c = c * sig(f + forget_bias) + sig(i) * np.tanh(j)
            new_h = np.tanh(new_c) * sig(o)
            live = (t < lengths)[:, None]
            c, h = np.where(live, new_c, c), np.where(live, new_h, h)
            outputs[:, t] = np.where(live, new_h, 0)
        states += [c, h]
        layer_input = outputs
    return outputs, np.concatenate(states, axis=1)


def test_lstm_matches_numpy_reference():
    from fewer_frames.models import lstm

    rng = np.random.default_rng(0)
    inputs = rng.normal(size=(4, 7, 5)).astype(np.float32)
    lengths = np.array([7, 3, 0, 1], np.int32)
    with tf.compat.v1.variable_scope("test"):
        outputs, state = lstm.stacked_lstm(tf.constant(inputs), tf.constant(lengths), 6, 2)
    variables = {v.op.name: v for v in tf.compat.v1.global_variables()}
    with tf.compat.v1.Session() as session:
        # Non-zero biases so that the bias path is checked too.
        session.run(tf.compat.v1.global_variables_initializer())
        for name, var in variables.items():
            if name.endswith("bias"):
                session.run(var.assign(rng.normal(size=var.shape).astype(np.float32)))
        got_outputs, got_state, values = session.run([outputs, state, variables])
    prefix = "test/rnn/multi_rnn_cell/cell_{}/basic_lstm_cell/"
    kernels = [values[prefix.format(layer) + "kernel"] for layer in range(2)]
    biases = [values[prefix.format(layer) + "bias"] for layer in range(2)]
    assert kernels[0].shape == (5 + 6, 24) and kernels[1].shape == (12, 24)
    expected_outputs, expected_state = numpy_lstm(inputs, lengths, kernels, biases)
    np.testing.assert_allclose(got_outputs, expected_outputs, atol=1e-5)
    np.testing.assert_allclose(got_state, expected_state, atol=1e-5)
    # A sequence of length 0 keeps the zero state.
    assert np.all(got_state[2] == 0)


def test_lstm_gradients_equal_finite_differences():
    """The gradient through the cell's products (lstm.py gives them their own)
    against central differences, with the batch size unknown to the graph."""
    from fewer_frames.models import lstm

    rng = np.random.default_rng(1)
    inputs = rng.normal(size=(3, 4, 5)).astype(np.float32)
    frames = tf.compat.v1.placeholder(tf.float32, [None, 4, 5])
    with tf.compat.v1.variable_scope("test"):
        outputs, state = lstm.stacked_lstm(frames, tf.constant([4, 2, 0]), 3, 2)
    with tf.compat.v1.Session():
        tf.compat.v1.global_variables_initializer().run()
        for output, shape in ((outputs, [3, 4, 3]), (state, [3, 12])):
            analytic, numeric = tf.compat.v1.test.compute_gradient(
                frames, [3, 4, 5], output, shape, x_init_value=inputs, delta=1e-2
            )
            # float32 (the cell computes in it): differences good to about 1e-4.
            np.testing.assert_allclose(analytic, numeric, atol=3e-4)


def _small_hlstm_graph(selection, fold_chunks=True, num_frames_value=None):
    rng = np.random.default_rng(3)
    frames = rng.normal(size=(5, 30, 8)).astype(np.float32)
    num_frames = np.array([30, 17, 3, 1, 0], np.int32)
    model_input = tf.compat.v1.placeholder(tf.float32, [None, 30, 8])
    frames_in = tf.compat.v1.placeholder(tf.int32, [None])
    teacher, student = build_teacher_and_student(
        frame_level_models.HierarchicalLstmModel(),
        model_input,
        frames_in,
        11,
        selection,
        lstm_cells=4,
        lstm_layers=2,
        num_inputs_to_lstm=5,
        student_num_inputs_to_lstm=2,
        fold_chunks=fold_chunks,
    )
    return frames, num_frames, model_input, frames_in, teacher, student


def test_teacher_ignores_frames_beyond_num_frames():
    selection = frame_selection.FrameSelection(
        "uniform", every_n=3, num_student_frames=0, max_frames=30
    )
    frames, num_frames, model_input, frames_in, teacher, student = _small_hlstm_graph(selection)
    noisy = frames.copy()
    for row, count in enumerate(num_frames):
        noisy[row, count:] = 100.0
    with tf.compat.v1.Session() as session:
        session.run(tf.compat.v1.global_variables_initializer())
        fetch = [teacher[0], teacher[1]["predictions"], student[0], student[1]["predictions"]]
        clean = session.run(fetch, {model_input: frames, frames_in: num_frames})
        dirty = session.run(fetch, {model_input: noisy, frames_in: num_frames})
    for clean_value, dirty_value in zip(clean, dirty, strict=True):
        np.testing.assert_allclose(clean_value, dirty_value, atol=1e-6)


@pytest.mark.parametrize("rule", frame_selection.RULES)
def test_student_ignores_frames_not_selected(rule):
    selection = frame_selection.FrameSelection(rule, num_student_frames=6, max_frames=30)
    frames, num_frames, model_input, frames_in, teacher, student = _small_hlstm_graph(selection)
    indices, counts = selection.indices(frames_in)
    with tf.compat.v1.Session() as session:
        session.run(tf.compat.v1.global_variables_initializer())
        feed = {model_input: frames, frames_in: num_frames}
        picked, picked_counts = session.run([indices, counts], feed)
        changed = np.full_like(frames, 50.0)
        for row in range(len(frames)):
            keep = picked[row, : picked_counts[row]]
            changed[row, keep] = frames[row, keep]
        fetch = [student[0], student[1]["predictions"]]
        original = session.run(fetch, feed)
        altered = session.run(fetch, {model_input: changed, frames_in: num_frames})
        teacher_before = session.run(teacher[0], feed)
        teacher_after = session.run(teacher[0], {model_input: changed, frames_in: num_frames})
    for before, after in zip(original, altered, strict=True):
        np.testing.assert_allclose(before, after, atol=1e-6)
    # The teacher does see the change (the check above is not vacuous).
    assert not np.allclose(teacher_before[:2], teacher_after[:2])


def test_folded_chunks_equal_per_chunk_recurrence():
    selection = frame_selection.FrameSelection("uniform", num_student_frames=10, max_frames=30)
    results = []
    for fold in (True, False):
        with tf.Graph().as_default():
            tf.compat.v1.set_random_seed(5)
            frames, num_frames, model_input, frames_in, teacher, student = _small_hlstm_graph(
                selection, fold_chunks=fold
            )
            results.append(
                run_session(
                    [teacher[0], teacher[1]["predictions"], student[0]],
                    {model_input: frames, frames_in: num_frames},
                )
            )
    for folded, per_chunk in zip(*results, strict=True):
        np.testing.assert_allclose(folded, per_chunk, atol=1e-6)


def test_moe_matches_numpy():
    rng = np.random.default_rng(2)
    inputs = rng.normal(size=(3, 4)).astype(np.float32)
    with tf.compat.v1.variable_scope("classifier"):
        out = video_level_models.MoeModel().create_model(tf.constant(inputs), 5, moe_num_mixtures=2)
    variables = {v.op.name: v for v in tf.compat.v1.trainable_variables()}
    assert sorted(variables) == [
        "classifier/experts/biases",
        "classifier/experts/weights",
        "classifier/gates/weights",
    ]
    got, values = run_session([out["predictions"], variables])
    gates = (inputs @ values["classifier/gates/weights"]).reshape(-1, 3)
    gates = np.exp(gates) / np.exp(gates).sum(1, keepdims=True)
    experts = inputs @ values["classifier/experts/weights"] + values["classifier/experts/biases"]
    experts = 1 / (1 + np.exp(-experts.reshape(-1, 2)))
    expected = (gates[:, :2] * experts).sum(1).reshape(3, 5)
    np.testing.assert_allclose(got, expected, atol=1e-6)
    penalties = tf.compat.v1.get_collection(tf.compat.v1.GraphKeys.REGULARIZATION_LOSSES)
    assert len(penalties) == 2


@pytest.mark.parametrize("name", ["LstmModel", "FrameLevelLogisticModel"])
def test_reference_models_work_as_teacher_and_student(name):
    model = base_model.find_class_by_name(name, [frame_level_models])()
    selection = frame_selection.FrameSelection("uniform", every_n=10, max_frames=30)
    model_input = tf.constant(np.random.default_rng(0).normal(size=(2, 30, 6)), tf.float32)
    num_frames = tf.constant([30, 4])
    # Only the hyperparameters the family declares: another one would be an error.
    wanted = {"lstm_cells": 3, "lstm_layers": 1}
    declared = {field.name for field in dataclasses.fields(model.Params)}
    params = {key: value for key, value in wanted.items() if key in declared}
    teacher, student = build_teacher_and_student(
        model, model_input, num_frames, 7, selection, **params
    )
    got = run_session([teacher[1]["predictions"], student[1]["predictions"]])
    assert got[0].shape == got[1].shape == (2, 7)
    assert np.all((got[0] > 0) & (got[0] < 1))


def test_a_keyword_argument_no_model_declares_is_an_error():
    model_input = tf.zeros([2, 30, 6])
    with pytest.raises(UserError, match="unknown keyword argument\\(s\\) lstm_sizes"):
        frame_level_models.HierarchicalLstmModel().create_model(
            model_input,
            3,
            tf.constant([30, 4]),
            lstm_sizes=8,
            lstm_layers=1,
            num_inputs_to_lstm=5,
        )


def test_unknown_model_name_lists_the_available_ones():
    with pytest.raises(ValueError) as error:
        base_model.find_class_by_name("NoSuchModel", [frame_level_models, video_level_models])
    message = str(error.value)
    assert "NoSuchModel" in message
    for known in ("HierarchicalLstmModel", "LstmModel", "MoeModel", "LogisticModel"):
        assert known in message


def test_chunks_must_divide_frames():
    model_input = tf.zeros([1, 30, 4])
    with pytest.raises(ValueError, match="cannot be cut into 7 equal chunks"):
        frame_level_models.HierarchicalLstmModel().create_model(
            model_input, 3, tf.constant([30]), lstm_cells=2, lstm_layers=1, num_inputs_to_lstm=7
        )
