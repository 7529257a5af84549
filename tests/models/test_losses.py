"""Losses against numpy; the teacher is a constant in the student's loss."""

import numpy as np
import pytest
import tensorflow as tf

from fewer_frames.config import settings
from fewer_frames.inputs import frame_selection
from fewer_frames.models import frame_level_models, losses
from testlib import run_session

RNG = np.random.default_rng(4)
TEACHER_P = RNG.uniform(0.01, 0.99, (3, 6)).astype(np.float32)
STUDENT_P = RNG.uniform(0.01, 0.99, (3, 6)).astype(np.float32)
LABELS = (RNG.random((3, 6)) < 0.4).astype(np.float32)
TEACHER_E = RNG.normal(size=(3, 5)).astype(np.float32)
STUDENT_E = RNG.normal(size=(3, 5)).astype(np.float32)


def numpy_ce(p, y):
    return np.mean(-np.sum(y * np.log(p + 1e-5) + (1 - y) * np.log(1 - p + 1e-5), axis=1))


def numpy_kl(t, s):
    t = t / t.sum(1, keepdims=True)
    s = s / s.sum(1, keepdims=True)
    return np.sum(t * (np.log(t) - np.log(s)))


def test_cross_entropy_matches_numpy():
    got = run_session(losses.CrossEntropyLoss().calculate_loss(tf.constant(STUDENT_P), LABELS))
    assert got == pytest.approx(numpy_ce(STUDENT_P, LABELS), rel=1e-5)


@pytest.mark.parametrize("kind", ["kl", "mse"])
def test_distillation_loss_parts_and_weights(kind):
    weights = settings.DistillationSettings(
        pred_loss=kind, ce_loss_weight=1.0, rep_loss_weight=0.5, pred_loss_weight=3.0
    )
    parts = losses.distillation_loss(
        tf.constant(LABELS),
        tf.constant(TEACHER_E),
        tf.constant(TEACHER_P),
        tf.constant(STUDENT_E),
        tf.constant(STUDENT_P),
        weights,
        label_loss=losses.CrossEntropyLoss(),
    )
    got = run_session({**parts, "total": losses.weighted_total(parts, weights)})
    ce = numpy_ce(STUDENT_P, LABELS)
    rep = np.mean(np.sum((TEACHER_E - STUDENT_E) ** 2, axis=1))
    if kind == "kl":
        pred = numpy_kl(TEACHER_P, STUDENT_P)
    else:
        pred = np.mean(np.sum((TEACHER_P - STUDENT_P) ** 2, axis=1))
    assert got["ce"] == pytest.approx(ce, rel=1e-5)
    assert got["rep"] == pytest.approx(rep, rel=1e-5)
    assert got["pred"] == pytest.approx(pred, rel=1e-4)
    assert got["total"] == pytest.approx(ce + 0.5 * rep + 3.0 * pred, rel=1e-5)


def test_kl_of_a_zero_teacher_probability_adds_nothing():
    teacher = TEACHER_P.copy()
    teacher[0, 2] = 0.0
    got = run_session(losses.prediction_loss(tf.constant(teacher), tf.constant(STUDENT_P), "kl"))
    normalised = teacher[0] / teacher[0].sum()
    mask = normalised > 0
    first = np.sum(
        normalised[mask] * np.log(normalised[mask] / (STUDENT_P[0] / STUDENT_P[0].sum())[mask])
    )
    expected = first + numpy_kl(teacher[1:], STUDENT_P[1:])
    assert got == pytest.approx(expected, rel=1e-5)


def test_kl_is_zero_for_identical_predictions():
    got = run_session(losses.prediction_loss(tf.constant(TEACHER_P), tf.constant(TEACHER_P), "kl"))
    assert abs(got) < 1e-6


def test_student_loss_has_no_gradient_into_the_teacher():
    model = frame_level_models.HierarchicalLstmModel()
    model_input = tf.constant(RNG.normal(size=(2, 20, 6)), tf.float32)
    num_frames = tf.constant([20, 7])
    params = {
        "lstm_cells": 3,
        "lstm_layers": 1,
        "num_inputs_to_lstm": 4,
        "student_num_inputs_to_lstm": 2,
    }
    with tf.compat.v1.variable_scope("model"):
        teacher_out = model.create_model(model_input, 6, num_frames, **params)
        teacher_rep = teacher_out["representation"]
    selection = frame_selection.FrameSelection("uniform", every_n=5, max_frames=20)
    student_input, student_frames = frame_selection.select_frames(
        model_input, num_frames, selection
    )
    with tf.compat.v1.variable_scope("model_student"):
        student_out = model.create_student(student_input, 6, student_frames, **params)
        student_rep = student_out["representation"]
    parts = losses.distillation_loss(
        tf.constant(LABELS[:2]),
        teacher_rep,
        teacher_out["predictions"],
        student_rep,
        student_out["predictions"],
    )
    teacher_vars = tf.compat.v1.trainable_variables("model/")
    student_vars = tf.compat.v1.trainable_variables("model_student/")
    assert teacher_vars and student_vars
    total = losses.weighted_total(parts)
    assert all(grad is None for grad in tf.gradients(total, teacher_vars))
    student_grads = tf.gradients(total, student_vars)
    assert all(grad is not None for grad in student_grads)
    values = run_session(student_grads)
    assert any(np.abs(value).sum() > 0 for value in values)


def test_unknown_label_loss_lists_known_ones():
    with pytest.raises(ValueError, match="Unknown loss 'HingeLos'.*CrossEntropyLoss"):
        losses.get_label_loss("HingeLos")
