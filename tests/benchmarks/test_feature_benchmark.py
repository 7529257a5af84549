"""benchmark.py --what=features: its figures at a tiny size, and the stand-in
Inception-v3's cost against the architecture's known 5.7 billion multiply-adds."""

import json

import pytest

from fewer_frames.benchmarks import feature_benchmark, stand_in_models
from testlib import run_binary


def test_features_mode_splits_the_time_per_minute_of_video(tmp_path):
    output = tmp_path / "features.json"
    run_binary(
        "benchmark.py",
        "--what=features",
        "--feature_network=small",
        "--vggish_size=small",
        "--feature_videos=2",
        "--feature_video_seconds=2.5",
        "--video_width=96",
        "--video_height=64",
        "--video_frames_per_second=20",
        "--keyframe_seconds=1",
        f"--output_json={output}",
    )
    figures = json.loads(output.read_text())
    assert figures["videos"] == 2
    assert figures["video_seconds"] == 6.0  # 2.5 s: the frames of seconds 0, 1 and 2
    assert figures["frames_embedded"] == 6
    assert figures["frames_decoded"] == 2 * 50
    assert figures["video"] == {
        "width": 96,
        "height": 64,
        "frames_per_second": 20,
        "keyframe_seconds": 1.0,
    }
    stages = figures["seconds_per_minute_of_video"]
    assert set(stages) == {"decode", "rgb_network", "audio_network", "writing", "wall"}
    assert all(seconds > 0 for seconds in stages.values())
    # the stages overlap, but none outlasts the whole
    assert max(stages[name] for name in stages if name != "wall") <= stages["wall"]
    macs = figures["inception_multiply_adds_per_frame"]
    assert figures["multiply_adds_deviation"] == pytest.approx(macs / 5.7e9 - 1)
    assert figures["multiply_adds_within_5_percent"] is False  # the small stand-in
    assert figures["models"].startswith("stand-ins with random weights")


def test_the_stand_in_inception_v3_costs_what_the_architecture_costs():
    macs = feature_benchmark.multiply_adds_per_frame(
        stand_in_models.inception_graph_def("inception_v3")
    )
    assert macs == pytest.approx(5.7e9, rel=0.05)
    small = feature_benchmark.multiply_adds_per_frame(stand_in_models.inception_graph_def("small"))
    # the count from shapes, worked by hand for the small network: a 3x3/2 VALID
    # convolution 23x23x3 -> 11x11x32, then a 3x3 SAME one 11x11x32 -> 11x11x2048
    assert small == 11 * 11 * 32 * 3 * 3 * 3 + 11 * 11 * 2048 * 3 * 3 * 32
