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


def test_videos_mode_compares_the_student_with_the_teacher_on_raw_video(tmp_path):
    output = tmp_path / "videos.json"
    run_binary(
        "benchmark.py",
        "--what=videos",
        "--feature_network=small",
        "--vggish_size=small",
        "--video_seconds=20.5",
        "--video_width=96",
        "--video_height=64",
        "--video_frames_per_second=10",
        "--video_keyframe_intervals=1,3",
        "--videos_per_path=2",
        "--lstm_cells=8",
        "--lstm_layers=1",
        f"--output_json={output}",
    )
    figures = json.loads(output.read_text())
    assert figures["student_frames"] == 30 and figures["lstm_cells"] == 8
    assert figures["videos_per_path"] == 2
    assert [row["keyframe_seconds"] for row in figures["rows"]] == [1.0, 3.0]
    assert figures["student_litert_int8"] == "measured"
    for row in figures["rows"]:
        teacher = row["teacher"]
        assert teacher["frames_decoded"] == 205  # every frame of 20.5 s at 10 fps
        assert teacher["frames_embedded"] == 21
        assert teacher["kernels"] == row["student"]["kernels"] == "TensorFlow"
        assert row["student_litert_int8"]["kernels"] in ("LiteRT xnnpack", "LiteRT builtin")
        for name in ("student", "student_litert_int8"):
            student = row[name]
            # the original stride: int(21 / 300 * 30) = 2 frames, seconds 0 and 10
            assert student["frames_embedded"] == 2
            # From the keyframe before each: keyframes at 0 s, then at 0.5 s + j (1 s):
            # 0 and 9.5 s; at 0 s, then 1.5 s + 3 j (3 s): 0 and 7.5 s. Frames that
            # no other refers to are skipped on the way (counted exactly in
            # test_video_inference); the keyframes and the targets are decoded.
            rolled = 6 if row["keyframe_seconds"] == 1 else 26
            assert 3 <= student["frames_decoded"] <= 1 + rolled
            for figure, ratio in row[f"{name}_over_teacher"].items():
                if figure == "frames_decoded":
                    assert ratio == student["frames_decoded"] / teacher["frames_decoded"]
                else:
                    expected = student["seconds"][figure] / teacher["seconds"][figure]
                    assert ratio == pytest.approx(expected)
            assert row[f"{name}_speedup"] == pytest.approx(
                teacher["seconds"]["total"] / student["seconds"]["total"]
            )
            assert student["videos_per_s"] == pytest.approx(1 / student["seconds"]["total"])
    assert figures["target"] == {"student_speedup": 8.0, "keyframe_seconds": 2.0, "met": False}
