"""Metrics: hand-worked cases, perfect and reversed rankings, batch-split invariance."""

import numpy as np
import pytest

from fewer_frames.evaluation import eval_util
from fewer_frames.evaluation.average_precision_calculator import AveragePrecisionCalculator
from fewer_frames.evaluation.mean_average_precision_calculator import MeanAveragePrecisionCalculator
from metric_oracles import brute_force_ap, brute_force_gap_and_map


def test_hit_at_one_hand_worked():
    predictions = np.array([[0.9, 0.1, 0.0], [0.2, 0.7, 0.1], [0.1, 0.2, 0.6]])
    actuals = np.array([[1, 0, 0], [1, 0, 0], [0, 0, 1]])
    assert eval_util.calculate_hit_at_one(predictions, actuals) == pytest.approx(2 / 3)


def test_perr_hand_worked():
    # Video 0: 2 labels {0, 2}; top 2 = {0, 1} -> 1/2. Video 1: 1 label {1}; top 1 = {1} -> 1.
    # Video 2: no labels -> 0.
    predictions = np.array([[0.9, 0.5, 0.1], [0.2, 0.7, 0.1], [0.3, 0.2, 0.1]])
    actuals = np.array([[1, 0, 1], [0, 1, 0], [0, 0, 0]])
    assert eval_util.calculate_precision_at_equal_recall_rate(
        predictions, actuals
    ) == pytest.approx((0.5 + 1.0 + 0.0) / 3)


def test_gap_hand_worked_counts_positives_outside_top_k():
    # top_k=1: pooled list (0.9, true), (0.8, false); 3 positives in all.
    # AP = (1/1) / 3.
    predictions = np.array([[0.9, 0.2, 0.1], [0.3, 0.8, 0.1]])
    actuals = np.array([[1, 1, 0], [1, 0, 0]])
    assert eval_util.calculate_gap(predictions, actuals, top_k=1) == pytest.approx(1 / 3)
    # top_k=3: ranked 0.9 T, 0.8 F, 0.3 T, 0.2 T, 0.1 F, 0.1 F -> (1 + 2/3 + 3/4) / 3.
    assert eval_util.calculate_gap(predictions, actuals, top_k=3) == pytest.approx(
        (1 + 2 / 3 + 3 / 4) / 3
    )


def test_perfect_and_reversed_rankings():
    rng = np.random.default_rng(0)
    actuals = (rng.random((40, 30)) < 0.1).astype(np.float64)
    actuals[np.arange(40), rng.integers(0, 30, 40)] = 1
    perfect = actuals + 0.01 * rng.random(actuals.shape)
    metrics = eval_util.EvaluationMetrics(30, top_k=30)
    metrics.accumulate(perfect, actuals, loss=0.0)
    result = metrics.get()
    assert result["avg_hit_at_one"] == 1.0
    assert result["avg_perr"] == 1.0
    assert result["gap"] == pytest.approx(1.0)
    assert result["map"] == pytest.approx(1.0)
    reversed_scores = -perfect
    metrics.clear()
    metrics.accumulate(reversed_scores, actuals, loss=0.0)
    result = metrics.get()
    assert result["avg_hit_at_one"] == 0.0
    assert result["avg_perr"] == 0.0
    # Every positive ranks below every negative.
    num_negatives = actuals.size - actuals.sum()
    expected_gap = brute_force_ap(reversed_scores.ravel(), actuals.ravel(), actuals.sum())
    assert result["gap"] == pytest.approx(expected_gap)
    assert result["gap"] < actuals.sum() / num_negatives


def test_accumulation_equals_one_pass_and_brute_force():
    rng = np.random.default_rng(1)
    num_videos, num_classes, top_k = 97, 60, 20
    actuals = (rng.random((num_videos, num_classes)) < 0.06).astype(np.float64)
    actuals[:, 50:] = 0
    predictions = rng.random((num_videos, num_classes)) + 0.5 * actuals
    losses = rng.random(num_videos)

    whole = eval_util.EvaluationMetrics(num_classes, top_k)
    whole.accumulate(predictions, actuals, loss=losses.mean())
    expected = whole.get()

    split = eval_util.EvaluationMetrics(num_classes, top_k)
    for start, stop in [(0, 10), (10, 11), (11, 60), (60, 97)]:
        split.accumulate(predictions[start:stop], actuals[start:stop], losses[start:stop].mean())
    result = split.get()
    for key in ("avg_hit_at_one", "avg_perr", "avg_loss", "gap", "map", "map_present_classes"):
        assert result[key] == pytest.approx(expected[key], abs=1e-12), key
    np.testing.assert_allclose(result["aps"], expected["aps"])
    assert result["num_examples"] == num_videos

    gap, mean_ap, mean_ap_present = brute_force_gap_and_map(predictions, actuals, top_k)
    assert (actuals.sum(axis=0) == 0).any()  # some classes are absent: the two mAPs differ
    assert result["gap"] == pytest.approx(gap)
    assert result["map"] == pytest.approx(mean_ap)
    assert result["map_present_classes"] == pytest.approx(mean_ap_present)
    assert result["map"] < result["map_present_classes"]
    assert result["gap"] == pytest.approx(eval_util.calculate_gap(predictions, actuals, top_k))


def test_map_over_all_classes_and_over_present_classes():
    calculator = MeanAveragePrecisionCalculator(4)
    # Class 0: entries T(0.9) F(0.5); 1 positive -> AP 1. Class 1: F(0.8) T(0.4) -> AP 1/2.
    # Classes 2 and 3: no positives, AP 0.
    calculator.accumulate([0, 0, 1, 1], [0.9, 0.5, 0.8, 0.4], [1, 0, 0, 1], [1, 1, 0, 0])
    np.testing.assert_allclose(calculator.peek_aps(), [1.0, 0.5, 0.0, 0.0])
    # The original's mAP: every class counts, absent ones as 0.
    assert calculator.peek_map() == pytest.approx(1.5 / 4)
    assert calculator.peek_map_present_classes() == pytest.approx(0.75)


def test_loss_is_a_batch_mean_or_one_value_per_video():
    predictions = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4]])
    labels = np.array([[1.0, 0.0], [0.0, 1.0], [0.0, 1.0]])
    by_mean = eval_util.EvaluationMetrics(2, top_k=2)
    by_video = eval_util.EvaluationMetrics(2, top_k=2)
    for rows, losses in (([0, 1], [1.0, 3.0]), ([2], [8.0])):
        by_mean.accumulate(predictions[rows], labels[rows], np.mean(losses))
        by_video.accumulate(predictions[rows], labels[rows], np.array(losses))
    # (1 + 3 + 8) / 3 either way.
    assert by_mean.get()["avg_loss"] == pytest.approx(4.0)
    assert by_video.get()["avg_loss"] == pytest.approx(4.0)


def test_average_precision_calculator_over_batches():
    calculator = AveragePrecisionCalculator()
    calculator.accumulate([0.9, 0.1], [1, 0])
    calculator.accumulate([0.5], [1], num_positives=2)  # one positive never scored
    # Ranked: 0.9 T, 0.5 T, 0.1 F; 3 positives -> (1 + 1) / 3.
    assert calculator.peek_ap() == pytest.approx(2 / 3)
    assert calculator.num_positives == 3


def test_invalid_top_k_is_rejected():
    with pytest.raises(ValueError, match="--top_k=0 must be positive"):
        eval_util.EvaluationMetrics(10, top_k=0)
