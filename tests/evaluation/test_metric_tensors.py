"""The metrics' per-video work in the graph, and the pooled entries ranked in
bounded memory: equal to numpy and to the one-at-a-time oracles, ties included."""

import numpy as np
import pytest
import tensorflow as tf

from fewer_frames.evaluation import eval_util, metric_tensors
from fewer_frames.evaluation.ranked_entries import RankedEntries, descending_keys
from metric_oracles import brute_force_ap, brute_force_gap_and_map, brute_force_hit_at_one_and_perr
from testlib import run_session


def _tied_batch(seed, videos=60, classes=30):
    """Scores on a coarse grid (many exact ties), labels with a video that has
    none and one with more labels than top_k."""
    rng = np.random.default_rng(seed)
    predictions = (np.floor(rng.random((videos, classes)) * 8) / 8).astype(np.float32)
    actuals = (rng.random((videos, classes)) < 0.15).astype(np.float32)
    actuals[0] = 0
    actuals[1, :25] = 1
    return predictions, actuals


@pytest.mark.parametrize("top_k", [1, 20, 40])
def test_graph_values_equal_numpy_values_and_the_oracles(top_k):
    predictions, actuals = _tied_batch(seed=top_k)
    in_graph = run_session(
        metric_tensors.video_metric_tensors(
            tf.constant(predictions), tf.constant(actuals), top_k=top_k
        )
    )
    in_numpy = eval_util.video_metric_values(predictions, actuals, top_k)
    assert sorted(in_graph) == sorted(in_numpy)
    for name, value in in_numpy.items():
        np.testing.assert_array_equal(in_graph[name], value, err_msg=name)
    assert in_graph["top_ids"].shape == (60, min(top_k, 30))

    metrics = eval_util.EvaluationMetrics(30, top_k)
    for start in range(0, 60, 25):
        rows = slice(start, start + 25)
        batch = eval_util.video_metric_values(predictions[rows], actuals[rows], top_k)
        graph_batch = run_session(
            metric_tensors.video_metric_tensors(
                tf.constant(predictions[rows]), tf.constant(actuals[rows]), top_k=top_k
            )
        )
        for name, value in batch.items():
            np.testing.assert_array_equal(graph_batch[name], value, err_msg=name)
        metrics.accumulate_values(graph_batch, loss=0.0)
    result = metrics.get()
    hit_at_one, perr = brute_force_hit_at_one_and_perr(predictions, actuals)
    gap, mean_ap, mean_ap_present = brute_force_gap_and_map(predictions, actuals, top_k)
    assert result["avg_hit_at_one"] == pytest.approx(hit_at_one, abs=1e-12)
    assert result["avg_perr"] == pytest.approx(perr, abs=1e-12)
    assert result["gap"] == pytest.approx(gap, abs=1e-12)
    assert result["map"] == pytest.approx(mean_ap, abs=1e-12)
    assert result["map_present_classes"] == pytest.approx(mean_ap_present, abs=1e-12)


def test_descending_keys_order_scores_best_first():
    scores = np.array([0.5, -1.0, np.inf, 0.0, -0.0, -np.inf, 1e-30, -1e-30, 3.0], np.float32)
    keys = descending_keys(scores)
    assert list(np.argsort(keys, kind="stable")) == [2, 8, 0, 6, 3, 4, 7, 1, 5]
    assert keys[3] == keys[4]  # -0.0 ties with 0.0


@pytest.mark.parametrize("range_entries", [1, 7, 1 << 19])
def test_ranking_in_ranges_equals_one_list_walked_entry_by_entry(range_entries):
    rng = np.random.default_rng(range_entries)
    lists, size = 5, 150
    ids = rng.integers(0, lists, size)
    # Few distinct scores far apart: whole buckets of ties, spread over ranges.
    scores = rng.choice([-3.0, 0.0, 0.25, 0.2500001, 7.5, 1e6], size).astype(np.float32)
    labels = (rng.random(size) < 0.3) & (ids != 3)  # list 3: only negatives
    # Positives without an entry count too (lists 0 and 2).
    positives = np.bincount(ids, weights=labels, minlength=lists) + [2, 0, 1, 0, 0]
    entries = RankedEntries(lists, range_entries=range_entries)
    for start, end in ((0, 40), (40, 41), (41, 41), (41, size)):
        entries.add(ids[start:end], scores[start:end], labels[start:end])
    aps, pooled = entries.average_precisions(positives)
    for list_id in range(lists):
        mine = ids == list_id
        expected = brute_force_ap(scores[mine], labels[mine], positives[list_id])
        assert aps[list_id] == pytest.approx(expected, abs=1e-12), list_id
    assert pooled == pytest.approx(brute_force_ap(scores, labels, positives.sum()), abs=1e-12)


def test_entries_are_stored_in_seven_bytes():
    entries = RankedEntries(3862)
    videos, top_k = 4000, 20
    rng = np.random.default_rng(0)
    for _ in range(videos // 500):
        ids = rng.integers(0, 3862, (500, top_k)).astype(np.int32)
        entries.add(ids, rng.random((500, top_k)), rng.random((500, top_k)) < 0.1)
    stored = sum(array.nbytes for part in entries._parts() for array in part)
    assert stored == videos * top_k * 7
    with pytest.raises(ValueError, match=r"list ids must lie in \[0, 3862\)"):
        entries.add([3862], [0.5], [True])


def test_bunched_scores_are_cut_into_ranges_of_the_asked_size():
    rng = np.random.default_rng(3)
    # Top-k scores of a confident model: all within 0.004 of 1, one 16-bit bucket.
    scores = (1 - rng.random(5000) * 0.004).astype(np.float32)
    scores[:300] = 0.5  # 300 entries with one score: a range of their own
    entries = RankedEntries(1, range_entries=100)
    entries.add(np.zeros(5000, np.int16), scores, rng.random(5000) < 0.5)
    keys = descending_keys(scores)
    sizes = [int(((keys >= first) & (keys <= last)).sum()) for first, last in entries._ranges()]
    assert sum(sizes) == 5000
    assert max(sizes) == 300 and sorted(sizes)[-2] <= 100


def test_the_training_logs_batch_metrics_equal_the_oracles():
    from fewer_frames.training.training_loop import batch_metrics

    predictions, actuals = _tied_batch(seed=5)
    logged = batch_metrics(predictions, actuals)
    hit_at_one, perr = brute_force_hit_at_one_and_perr(predictions, actuals)
    gap, _, _ = brute_force_gap_and_map(predictions, actuals, top_k=20)
    assert logged == pytest.approx({"hit_at_one": hit_at_one, "perr": perr, "gap": gap}, abs=1e-12)
