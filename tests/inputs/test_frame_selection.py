"""Frame selection: every rule against its documented indices on a table of cases."""

import numpy as np
import pytest
import tensorflow as tf

from fewer_frames.inputs import frame_selection
from fewer_frames.models import model_config
from testlib import run_session


def selected(
    rule, lengths, k=0, every_n=10, max_frames=30, is_training=False, video_ids=None, seed=1234
):
    """Real indices each video receives, as lists."""
    selection = frame_selection.FrameSelection(
        rule, every_n=every_n, num_student_frames=k, max_frames=max_frames, seed=seed
    )
    ids = None if video_ids is None else tf.constant(video_ids)
    indices, counts = selection.indices(tf.constant(lengths), is_training, ids)
    indices, counts = run_session([indices, counts])
    assert indices.shape == (len(lengths), selection.frame_budget)
    assert np.all(indices[np.arange(indices.shape[1])[None, :] >= counts[:, None]] == 0)
    return [row[:count].tolist() for row, count in zip(indices, counts, strict=True)]


@pytest.mark.parametrize(
    "rule, length, k, expected",
    [
        ("uniform", 30, 6, [0, 5, 10, 15, 20, 25]),
        ("uniform", 10, 4, [0, 2, 5, 7]),
        ("uniform", 3, 6, [0, 1, 2]),
        ("uniform", 1, 6, [0]),
        ("uniform", 0, 6, []),
        ("first", 30, 4, [0, 1, 2, 3]),
        ("first", 2, 4, [0, 1]),
        ("middle", 30, 4, [13, 14, 15, 16]),
        ("middle", 11, 4, [3, 4, 5, 6]),
        ("middle", 3, 4, [0, 1, 2]),
        ("last", 30, 4, [26, 27, 28, 29]),
        ("last", 7, 4, [3, 4, 5, 6]),
        ("last", 1, 4, [0]),
        ("first_middle_last", 30, 6, [0, 1, 14, 15, 28, 29]),
        ("first_middle_last", 30, 7, [0, 1, 2, 14, 15, 28, 29]),
        ("first_middle_last", 7, 7, [0, 1, 2, 3, 4, 5, 6]),
        ("first_middle_last", 8, 7, [0, 1, 2, 3, 4, 6, 7]),
        ("first_middle_last", 5, 7, [0, 1, 2, 3, 4]),
        ("first_middle_last", 1, 3, [0]),
    ],
)
def test_rule_table(rule, length, k, expected):
    assert selected(rule, [length], k=k) == [expected]


def test_original_stride_counts_as_the_original_code():
    # Indices 0, 10, 20 of the padded input; the student's num_frames is the
    # original's int(L / 30 * int(30 / 10)): 25 frames give 2, 9 give 0.
    got = selected("uniform", [30, 25, 11, 10, 9, 1, 0], every_n=10)
    assert got == [[0, 10, 20], [0, 10], [0], [0], [], [], []]


@pytest.mark.parametrize("every_n", [3, 7, 10, 15, 30])
def test_original_stride_count_for_every_length(every_n):
    # The original's expression as Python evaluates it (float64, truncated), for L = 0..300.
    lengths = list(range(301))
    selection = frame_selection.FrameSelection("uniform", every_n=every_n, max_frames=300)
    _, counts = run_session(selection.indices(tf.constant(lengths)))
    expected = [int(length / 300 * int(300 / every_n)) for length in lengths]
    assert counts.tolist() == expected


def test_reached_stride_count():
    # --stride_frame_count=reached: every real frame the stride reaches, ceil(L / 10).
    selection = frame_selection.FrameSelection(
        "uniform", every_n=10, max_frames=30, stride_frame_count="reached"
    )
    indices, counts = run_session(selection.indices(tf.constant([30, 25, 11, 10, 1, 0])))
    assert counts.tolist() == [3, 3, 2, 1, 1, 0]
    assert indices.tolist() == [[0, 10, 20], [0, 10, 20], [0, 10, 0], [0, 0, 0], [0, 0, 0], [0] * 3]


def test_budget_from_every_n_for_other_rules():
    # Without --num_student_frames, k = ceil(30 / 10) = 3 for every rule.
    assert selected("last", [30, 2], every_n=10) == [[27, 28, 29], [0, 1]]


def test_random_rule_is_sorted_distinct_within_length_and_repeatable_in_evaluation():
    lengths = [30, 12, 5, 1, 0]
    ids = [b"a", b"b", b"c", b"d", b"e"]
    first = selected("random", lengths, k=6, video_ids=ids)
    again = selected("random", lengths, k=6, video_ids=ids)
    assert first == again
    for picked, length in zip(first, lengths, strict=True):
        assert len(picked) == min(6, length)
        assert picked == sorted(set(picked))
        assert all(0 <= index < length for index in picked)
    # The same video gets the same frames whatever batch it is in.
    assert selected("random", [12], k=6, video_ids=[b"b"]) == [first[1]]


def _pick_counts(picks, length):
    return np.bincount(np.concatenate(picks), minlength=length)


@pytest.mark.parametrize("length", [300, 120])
def test_random_rule_spreads_over_the_whole_video_and_follows_its_seed(length):
    videos, k = 2000, 30
    ids = [f"video{index}".encode() for index in range(videos)]
    picks = selected("random", [length] * videos, k=k, max_frames=300, video_ids=ids)
    # Each frame is picked by about videos * k / length videos (binomial); 5 standard
    # deviations allow for chance, and fail rules such as First-k or Middle-k.
    expected = videos * k / length
    bound = 5 * np.sqrt(expected * (1 - k / length))
    counts = _pick_counts(picks, length)
    assert np.all(np.abs(counts - expected) < bound), (counts.min(), counts.max(), expected)
    # Another seed, other frames for nearly every video.
    other = selected("random", [length] * videos, k=k, max_frames=300, video_ids=ids, seed=99)
    assert sum(a == b for a, b in zip(picks, other, strict=True)) < videos // 100
    # Training draws spread the same way.
    trained = selected("random", [length] * videos, k=k, max_frames=300, is_training=True)
    counts = _pick_counts(trained, length)
    assert np.all(np.abs(counts - expected) < bound), (counts.min(), counts.max(), expected)


def test_random_rule_draws_anew_each_training_step():
    selection = frame_selection.FrameSelection("random", num_student_frames=5, max_frames=30)
    indices, _ = selection.indices(tf.constant([30, 30]), is_training=True)
    with tf.compat.v1.Session() as session:
        draws = [session.run(indices).tolist() for _ in range(4)]
    assert len({str(draw) for draw in draws}) > 1


def test_gather_frames_zeroes_padding():
    video = np.arange(2 * 30 * 2, dtype=np.float32).reshape(2, 30, 2) + 1
    selection = frame_selection.FrameSelection("last", num_student_frames=4, max_frames=30)
    student, counts = frame_selection.select_frames(
        tf.constant(video), tf.constant([30, 2]), selection
    )
    student, counts = run_session([student, counts])
    np.testing.assert_array_equal(student[0], video[0, 26:30])
    np.testing.assert_array_equal(student[1, :2], video[1, 0:2])
    assert np.all(student[1, 2:] == 0) and counts.tolist() == [4, 2]


def test_shift_indices_keeps_each_video_within_its_frames():
    # Hand-worked: a 12-frame video and a 3-frame one (two real positions of three).
    indices = tf.constant([[0, 5, 11], [0, 2, 0]])
    moved = frame_selection.shift_indices(
        indices, tf.constant([3, 2]), tf.constant([12, 3]), tf.constant([[-1, 1, 1], [1, 1, 1]])
    )
    assert run_session(moved).tolist() == [[0, 6, 11], [1, 2, 0]]


def test_a_run_config_gives_its_jitter_to_the_selection():
    config = model_config.ModelConfig(models=["teacher", "student"], frame_jitter=2)
    assert config.selection().jitter == 2


def test_jitter_moves_training_frames_and_leaves_evaluation_alone():
    plain = frame_selection.FrameSelection("uniform", every_n=10, max_frames=300)
    jittered = frame_selection.FrameSelection("uniform", every_n=10, max_frames=300, jitter=2)
    lengths = tf.constant([300, 45])
    evaluated = [selection.indices(lengths)[0] for selection in (plain, jittered)]
    base, jittered_eval = run_session(evaluated)
    np.testing.assert_array_equal(base, jittered_eval)
    trained, count = jittered.indices(lengths, is_training=True)
    with tf.compat.v1.Session() as session:
        draws = [session.run([trained, count]) for _ in range(20)]
    shifts = np.stack([draw - base for draw, _ in draws])
    real = np.arange(base.shape[1])[None, :] < draws[0][1][:, None]
    # Every shift of -2..2 happens, none beyond, only at real positions.
    assert set(shifts[:, real].ravel().tolist()) == {-2, -1, 0, 1, 2}
    assert np.all(shifts[:, ~real] == 0)
    with pytest.raises(ValueError, match="--frame_jitter=-1 must be 0"):
        frame_selection.FrameSelection(jitter=-1)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"every_n": 0}, "--every_n=0 must be in 1..30"),
        ({"every_n": 31}, "--every_n=31 must be in 1..30"),
        ({"num_student_frames": 40}, "--num_student_frames=40 must be in 1..30"),
        ({"rule": "sparse"}, "Unknown frame selection 'sparse'"),
    ],
)
def test_invalid_settings_are_rejected(kwargs, message):
    settings = {"rule": "uniform", "every_n": 10, "num_student_frames": 0, **kwargs}
    with pytest.raises(ValueError, match=message):
        frame_selection.FrameSelection(max_frames=30, **settings)
