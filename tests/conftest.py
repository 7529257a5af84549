"""Shared fixtures (sample data, the real YouTube-8M shards), and skips made failures
under ./run_tests.sh."""

import fractions
import json
import os

import pytest

from fewer_frames.benchmarks import generated_videos, stand_in_models
from fewer_frames.inputs import sample_data
from testlib import ALL_FRAMES, REAL_DATA_DIR, TINY_RUN, made_once, run_binary, shared_root


@pytest.fixture(scope="session")
def real_data_dir():
    """The genuine YouTube-8M shards beside the project."""
    if not os.path.isdir(REAL_DATA_DIR):
        pytest.skip(f"real data folder {REAL_DATA_DIR} is not present")
    return REAL_DATA_DIR


@pytest.fixture(scope="session")
def small_sample(tmp_path_factory):
    """A small frame-level sample (2018 format), made once per session."""
    output_dir = shared_root(tmp_path_factory) / "shared_sample"
    with made_once(output_dir) as make:
        if make:
            sample_data.make_sample(
                str(output_dir),
                num_train_files=2,
                num_validate_files=1,
                num_test_files=1,
                videos_per_file=60,
            )
    with open(output_dir / "sample_manifest.json") as handle:
        return str(output_dir), json.load(handle)


# Stand-in model files (the releases' names, formats and shapes, small networks)
# and generated videos for the feature tests, with what real files vary in: sizes
# that are not multiples of 16, NTSC's 30000/1001 frames a second, audio at 48 kHz
# with channels that differ, motion in every frame and B-frames.
# video name: (seconds, write_video options)
VIDEOS = {
    "tone.mp4": (
        4.5,
        {
            "width": 70,
            "height": 42,
            "frames_per_second": fractions.Fraction(30000, 1001),
            "audio_rate": 48000,
        },
    ),
    "silent.mp4": (3.0, {"audio": False, "width": 82, "height": 46, "frames_per_second": 24}),
}


@pytest.fixture(scope="session")
def feature_models(tmp_path_factory):
    model_dir = shared_root(tmp_path_factory) / "feature_models"
    with made_once(model_dir) as make:
        if make:
            stand_in_models.write_rgb_files(str(model_dir))
            stand_in_models.write_audio_files(str(model_dir))
    return str(model_dir)


@pytest.fixture(scope="session")
def videos(tmp_path_factory):
    """{name: path} of the VIDEOS."""
    folder = shared_root(tmp_path_factory) / "feature_videos"
    with made_once(folder) as make:
        if make:
            folder.mkdir(parents=True)
            for name, (seconds, options) in VIDEOS.items():
                generated_videos.write_video(str(folder / name), seconds, **options)
    return {name: str(folder / name) for name in VIDEOS}


# Runs trained once per session for the tests that only read them: (binary, flags).
# A test that writes into one copies it first.
SHARED_RUNS = {
    "student": [
        "--training_mode=student_only",
        "--max_steps=1",
        *TINY_RUN,
        "--batch_size=8",
    ],
    "teacher_student": [*TINY_RUN, "--max_steps=30", "--base_learning_rate=0.01"],
    "all_frames": [*TINY_RUN, *ALL_FRAMES, "--max_steps=30", "--base_learning_rate=0.01"],
    "teacher": [
        "--training_mode=teacher_only",
        *TINY_RUN,
        "--max_steps=30",
        "--base_learning_rate=0.01",
    ],
}


@pytest.fixture(scope="session")
def shared_run(small_sample, tmp_path_factory):
    """shared_run(name): the directory of a run of SHARED_RUNS, trained on first
    use; "converted": the student of "teacher_student" converted for fine-tuning."""
    sample_dir, _ = small_sample
    root = shared_root(tmp_path_factory) / "shared_runs"

    def get(name):
        directory = root / name
        source = get("teacher_student") if name == "converted" else None
        with made_once(directory) as make:
            if make and source:
                run_binary(
                    "train_convert_model.py",
                    f"--train_dir={source}",
                    f"--finetune_dir={directory}",
                )
            elif make:
                run_binary(
                    "train.py",
                    f"--train_dir={directory}",
                    f"--train_data_pattern={sample_dir}/train*.tfrecord",
                    *SHARED_RUNS[name],
                )
        return str(directory)

    return get


@pytest.fixture(autouse=True)
def fresh_graph():
    """Every test builds into its own default graph."""
    import tensorflow as tf

    with tf.Graph().as_default() as graph:
        yield graph


# ./run_tests.sh installs every tool the tests use (TensorBoard, tf-keras) and runs
# beside the real shards: there, a test that would skip for lack of one fails.
# A skip is only for someone running pytest by hand without them.
EVERY_TOOL_REQUIRED = os.environ.get("YT8M_TESTS_REQUIRE_EVERY_TOOL") == "1"


def _as_failure(report):
    if EVERY_TOOL_REQUIRED and report.skipped and not hasattr(report, "wasxfail"):
        report.outcome = "failed"
        report.longrepr = (
            f"skipped under ./run_tests.sh, which provides every tool: {report.longrepr}"
        )


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    _as_failure(outcome.get_result())


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector):
    outcome = yield
    _as_failure(outcome.get_result())


# The longest tests start first, so that the workers do not wait for one of them
# at the end (pytest-xdist hands tests out in collection order); the order of the
# 25 slowest that ./run_tests.sh prints (see docs/tests.md).
LONGEST_FIRST = (
    "test_vlad_models.py::test_short_training",
    "test_original_fidelity.py::",
    "test_efficient_inference.py::test_training_with_xla",
    "test_towers.py::test_short_run",
    "test_reliability.py::test_evaluation_loop_survives",
    "test_feature_benchmark.py::test_videos_mode",
    "test_segments.py::test_fine_tune_on_segments",
    "test_segments.py::test_segment_inference_memory",
    "test_filesystem.py::test_every_stage",
    "test_feature_benchmark.py::test_beam_mode",
    "test_benchmark.py::test_deploy_mode",
    "test_towers.py::test_two_towers_finetune_step",
    "test_filesystem.py::test_a_ram_run_directory",
    "test_reliability.py::test_kill_9",
    "test_bfloat16_training.py::test_a_bfloat16_run_resumes",
    "test_towers.py::test_two_towers_step",
    "test_determinism.py::",
    "test_lease.py::test_one_trainer_per_run_directory",
    "test_table1_grid.py::test_tiny_grid",
    "test_distributed.py::",
    "test_inference_export.py::test_export_reloads",
    "test_litert.py::test_what_cannot_be_exported",
    "test_scale_benchmark.py::test_scale_mode",
    "test_pipeline.py::test_five_scripts",
    "test_beam_videos.py::test_inference_on_both",
    "test_beam_videos.py::test_extraction_on_both",
    "test_towers.py::test_full_size_graph",
    "test_preemption.py::test_a_signal_saves",
    "test_new_family.py::",
)


def pytest_collection_modifyitems(items):
    def rank(item):
        found = [i for i, name in enumerate(LONGEST_FIRST) if name in item.nodeid]
        return found[0] if found else len(LONGEST_FIRST)

    items.sort(key=rank)
