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


def test_scale_mode_start_up_reads_do_not_grow_with_the_data(tmp_path):
    output = tmp_path / "scale.json"
    # Two sizes, the second with twice the videos and files (records of 8 to 16
    # frames: 14 KB, so that both training sets outgrow what start-up may read).
    run_binary(
        "benchmark.py",
        "--what=scale",
        "--scale_fractions=0.0004,0.0002",
        "--scale_frames=8,16",
        "--scale_stages=startup,evaluation",
        "--lstm_cells=8",
        "--lstm_layers=1",
        "--batch_size=16",
        f"--output_json={output}",
    )
    figures = json.loads(output.read_text())
    small, large = figures["scale_measured"]
    assert (small["fraction"], large["fraction"]) == (0.0002, 0.0004)
    assert small["data"]["train"] == {
        "videos": 778,
        "files": 1,
        "bytes": pytest.approx(1.06e7, rel=0.1),
    }
    assert large["data"]["train"]["videos"] == 1556 and large["data"]["train"]["files"] == 2
    assert set(large["stages"]) == {"startup", "evaluation"}
    # Start-up: a few MB, whatever the size. An evaluation pass reads its data.
    for row in (small, large):
        assert row["stages"]["startup"]["bytes_read"] < 16e6
    growth = large["stages"]["startup"]["bytes_read"] - small["stages"]["startup"]["bytes_read"]
    added = large["data"]["train"]["bytes"] - small["data"]["train"]["bytes"]
    assert growth < 0.1 * added, (growth, added)
    evaluation_growth = (
        large["stages"]["evaluation"]["bytes_read"] - small["stages"]["evaluation"]["bytes_read"]
    )
    added_validation = large["data"]["validate"]["bytes"] - small["data"]["validate"]["bytes"]
    assert evaluation_growth == pytest.approx(added_validation, rel=0.1)
    for row in (small, large):
        for stage in row["stages"].values():
            assert stage["read_calls"] > 0 and stage["peak_bytes"] > 0 and stage["wall_seconds"] > 0
    # Extrapolated: the evaluation reads the whole validation set's share.
    full = figures["scale_extrapolated"]
    per_video = added_validation / (
        large["data"]["validate"]["videos"] - small["data"]["validate"]["videos"]
    )
    assert full["evaluation"]["bytes_read"] == pytest.approx(1_112_356 * per_video, rel=0.15)
    assert full["startup"]["storage_seconds"] == pytest.approx(
        full["startup"]["read_calls"] * 0.03 + full["startup"]["bytes_read"] / 200e6, abs=0.05
    )
    # The start-up does not grow: its full-size figures are the largest size's.
    assert full["startup"]["bytes_read"] == pytest.approx(large["stages"]["startup"]["bytes_read"])
