"""The video paths on Apache Beam (--beam_pipeline_options), through the binaries:
with the in-memory runner and with two worker processes they write the same
shards, receipts, dead-letter CSV and predictions, byte for byte, as the
in-process path; a hung decode fails after its timeout; a missing Beam or a
wrong option is one line."""

import os
import pathlib
import re
import subprocess

import pytest

from testlib import BEAM_IN_MEMORY, CODE_DIR, PROJECT_ROOT, binary_launcher, run_binary

IN_MEMORY = BEAM_IN_MEMORY
TWO_PROCESSES = (
    "--beam_pipeline_options=runner=DirectRunner,direct_num_workers=2,"
    "direct_running_mode=multi_processing"
)
# Beam's workers take one TensorFlow thread each; the in-process path the same,
# so that the networks' float sums (mean_rgb, mean_audio, scores) match bit for bit.
ONE_THREAD = "--feature_threads=1"
EVERY_PATH = [
    ("in_process", [ONE_THREAD]),
    ("in_memory", [IN_MEMORY]),
    ("two_processes", [TWO_PROCESSES]),
]


@pytest.fixture(scope="module")
def listed(tmp_path_factory, videos):
    """A CSV of two good videos listed twice, a missing file and a line that is
    not `<video file>,<labels>`; {what fails: its error}."""
    folder = tmp_path_factory.mktemp("beam_videos")
    missing = f"{folder}/missing.mp4"
    lines = [
        f"{videos['tone.mp4']},1",
        f"{videos['silent.mp4']},2;7",
        f"{missing},3",
        f"{videos['tone.mp4']},4;5",
        "a,b,c,d",
        f"{videos['silent.mp4']},",
    ]
    (folder / "videos.csv").write_text("\n".join(lines) + "\n")
    errors = {
        missing: f"{missing}: no such file",
        "a,b,c,d": "videos.csv:5: expected `<video file>,<labels>`",
    }
    return folder / "videos.csv", errors


def counters(stderr):
    """The Beam counters the binary logged."""
    line = re.search(r"Beam counters: (.*)", stderr).group(1)
    return {name: int(value) for name, value in (pair.split() for pair in line.split(", "))}


def files_under(folder):
    return {
        os.path.relpath(os.path.join(root, name), folder): open(
            os.path.join(root, name), "rb"
        ).read()
        for root, _, names in os.walk(folder)
        for name in names
    }


def extract(csv_path, output, feature_models, *flags):
    return run_binary(
        "extract_features.py",
        f"--input_videos_csv={csv_path}",
        f"--output_tfrecords_file={output}",
        f"--model_dir={feature_models}",
        "--videos_per_shard=2",
        *flags,
        check=False,
    )


def test_extraction_on_both_local_runners_writes_the_in_process_files(
    tmp_path, listed, feature_models
):
    """Shards, receipts and the dead-letter CSV equal the in-process path's, byte for
    byte; the networks load once per worker process; the dead-letter CSV reads
    back as a list of videos."""
    csv_path, errors = listed
    outputs = {}
    for name, flags in EVERY_PATH:
        result = extract(csv_path, tmp_path / name / "features.tfrecord", feature_models, *flags)
        assert result.returncode == 1, result.stderr[-3000:]
        assert "2 of 6 videos failed (each named above, listed in" in result.stderr
        assert f"{tmp_path / name}/features.failed.csv" in result.stderr
        outputs[name] = files_under(tmp_path / name)
        if name == "in_process":
            assert "Progress: 6 of 6 videos" in result.stderr
            continue
        seen = counters(result.stderr)
        assert seen["videos"] == 6 and seen["failed"] == 2, seen
        # the steps at 0 to 4 s of tone.mp4 (4.5 s) and 0 to 2 s of silent.mp4 (3 s), twice
        assert seen["frames_decoded"] > 0 and seen["video_seconds"] == 2 * (5 + 3)
        # in memory: one process; two workers: at most one load each
        assert 1 <= seen["model_loads"] <= (1 if name == "in_memory" else 2), seen
    shards = [f"features-{index:05d}-of-00003.tfrecord" for index in range(3)]
    assert sorted(outputs["in_process"]) == sorted(
        [*shards, "features.failed.csv", *(f"features.progress/{shard}.json" for shard in shards)]
    )
    assert outputs["in_memory"] == outputs["in_process"]
    assert outputs["two_processes"] == outputs["in_process"]
    failed = outputs["in_process"]["features.failed.csv"].decode().splitlines()
    assert len(failed) == 2
    for line, (video, error) in zip(failed, errors.items(), strict=True):
        assert line.startswith((f"{video},3,", f'"{video}",,')) and error in line
    # Fed back as it is: read as videos (three columns), each failing as before.
    again = extract(
        tmp_path / "in_process" / "features.failed.csv", tmp_path / "again.tfrecord", feature_models
    )
    assert "2 of 2 videos failed" in again.stderr
    assert "a,b,c,d: no such file" in again.stderr and errors[next(iter(errors))] in again.stderr


def test_inference_on_both_local_runners_writes_the_in_process_predictions(
    tmp_path, listed, feature_models, shared_run
):
    csv_path, errors = listed
    outputs = {}
    for name, flags in EVERY_PATH:
        (tmp_path / name).mkdir()
        result = run_binary(
            "inference.py",
            f"--train_dir={shared_run('student')}",
            f"--input_videos_csv={csv_path}",
            f"--model_dir={feature_models}",
            f"--output_file={tmp_path / name / 'predictions.csv'}",
            *flags,
            check=False,
        )
        assert result.returncode == 1, result.stderr[-3000:]
        assert "2 of 6 videos failed" in result.stderr
        assert "the predictions of the other 4 are written" in result.stderr
        outputs[name] = files_under(tmp_path / name)
        if name != "in_process":
            # the features' networks and the run's model, once per process
            loads = counters(result.stderr)["model_loads"]
            assert loads == 2 if name == "in_memory" else 2 <= loads <= 4, loads
    assert sorted(outputs["in_process"]) == ["predictions.csv", "predictions.failed.csv"]
    assert len(outputs["in_process"]["predictions.csv"].decode().splitlines()) == 1 + 4
    assert outputs["in_memory"] == outputs["in_process"]
    assert outputs["two_processes"] == outputs["in_process"]


def _hanging_binary(binary, *flags):
    """Runs `binary` with flags in a process where opening a file named hang.mp4
    never returns (as a stalled network read does)."""
    program = f"""
import runpy, sys, threading
sys.path.insert(0, {CODE_DIR!r})
from fewer_frames.features import video_files
opened = video_files.VideoReader._open
def _open(self, av):
    if self.path.endswith("hang.mp4"):
        threading.Event().wait()
    return opened(self, av)
video_files.VideoReader._open = _open
sys.argv = [{binary!r}, *{list(flags)!r}]
runpy.run_path({os.path.join(CODE_DIR, binary)!r}, run_name="__main__")
"""
    return subprocess.run(
        [binary_launcher(), "-c", program],
        capture_output=True,
        text=True,
        cwd=PROJECT_ROOT,
        timeout=120,
    )


def test_a_hung_decode_fails_after_its_timeout_and_the_others_are_written(
    tmp_path, videos, feature_models
):
    hung = tmp_path / "hang.mp4"
    hung.write_bytes(pathlib.Path(videos["tone.mp4"]).read_bytes())
    (tmp_path / "videos.csv").write_text(f"{hung},1\n{videos['silent.mp4']},2\n")
    for name, flags in [("in_process", []), ("in_memory", [IN_MEMORY])]:
        result = _hanging_binary(
            "extract_features.py",
            f"--input_videos_csv={tmp_path / 'videos.csv'}",
            f"--output_tfrecords_file={tmp_path / name / 'features.tfrecord'}",
            f"--model_dir={feature_models}",
            "--video_timeout_seconds=1.5",
            *flags,
        )
        assert result.returncode == 1, result.stderr[-3000:]
        message = f"{hung}: decoding gave nothing for 1.5 s (--video_timeout_seconds); stopped"
        assert message in result.stderr
        failed = (tmp_path / name / "features.failed.csv").read_text()
        assert failed.startswith(f"{hung},1,") and message in failed
        written = files_under(tmp_path / name)["features.tfrecord"]
        assert videos["silent.mp4"].encode() in written and str(hung).encode() not in written


def test_without_beam_or_with_a_wrong_option_the_flag_is_one_line(tmp_path, listed):
    csv_path, _ = listed
    flags = [
        f"--input_videos_csv={csv_path}",
        f"--output_tfrecords_file={tmp_path / 'features.tfrecord'}",
    ]
    program = (
        "import runpy, sys; sys.modules['apache_beam'] = None; "
        f"sys.path.insert(0, {CODE_DIR!r}); "
        f"sys.argv = ['extract_features.py', *{flags!r}, '--beam_pipeline_options=runner=x']; "
        f"runpy.run_path({os.path.join(CODE_DIR, 'extract_features.py')!r}, run_name='__main__')"
    )
    result = subprocess.run(
        [binary_launcher(), "-c", program], capture_output=True, text=True, cwd=PROJECT_ROOT
    )
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1] == (
        "ERROR: --beam_pipeline_options needs Apache Beam: pip install -r requirements-beam.txt"
    )
    for options, message in [
        ("runner=DirectRunner,no_such_option=1", "no such Beam option: --no_such_option=1"),
        ("runner=", "'runner=' is not key=value"),
    ]:
        result = run_binary(
            "extract_features.py", *flags, f"--beam_pipeline_options={options}", check=False
        )
        assert result.returncode == 1
        assert result.stderr.strip().splitlines()[-1] == (
            f"ERROR: --beam_pipeline_options: {message}"
        )
    # Model files are made sure of by the binary, before any worker starts.
    (tmp_path / "no_models").mkdir()
    result = run_binary(
        "extract_features.py",
        *flags,
        f"--model_dir={tmp_path / 'no_models'}",
        "--nodownload_models",
        IN_MEMORY,
        check=False,
    )
    assert result.returncode == 1 and "Beam counters" not in result.stderr
    assert "classify_image_graph_def.pb" in result.stderr.strip().splitlines()[-1]
    assert not os.path.exists(tmp_path / "features.tfrecord")
