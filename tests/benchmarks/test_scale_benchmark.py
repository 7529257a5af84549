"""benchmark.py --what=metrics and --what=scale through the binary."""

import json

import pytest

from fewer_frames.benchmarks import metrics_benchmark
from fewer_frames.evaluation import eval_util
from testlib import run_binary


def test_metrics_mode_measures_the_evaluation_loop_metrics(tmp_path):
    output = tmp_path / "metrics.json"
    run_binary(
        "benchmark.py",
        "--what=metrics",
        "--metrics_videos=3000",
        "--batch_size=500",
        f"--output_json={output}",
    )
    figures = json.loads(output.read_text())
    assert figures["metrics_videos"] == 3000 and figures["metrics_classes"] == 3862
    assert figures["metrics_videos_per_second"] > 0
    assert figures["metrics_loop_videos_per_second"] >= figures["metrics_videos_per_second"]
    # 20 entries of 7 bytes per video kept; the ranking's peak above it.
    kept = figures["metrics_kept_gib_per_million_videos"] * 2**30 / 1e6
    assert 20 * 7 <= kept <= 20 * 7 * 1.1, kept
    assert (
        figures["metrics_peak_gib_per_million_videos"]
        > figures["metrics_kept_gib_per_million_videos"]
    )
    # The GAP of the pool's batches after the warm-up one, as numpy's per-video
    # work scores them.
    scores, labels = metrics_benchmark._pool(500, 3862)
    metrics = eval_util.EvaluationMetrics(3862)
    for batch in range(1, 3000 // 500 + 1):
        metrics.accumulate(scores[batch % len(scores)], labels[batch % len(scores)], 0.0)
    assert figures["metrics_gap"] == pytest.approx(metrics.get()["gap"], rel=1e-12)
