"""Classifying video files: the student decodes and embeds only its frames, and
predicts what it predicts on the records of extract_features.py."""

import dataclasses
import os
import subprocess

import pytest

from fewer_frames.benchmarks import generated_videos
from fewer_frames.config import settings
from fewer_frames.features import video_list
from fewer_frames.inputs import frame_selection
from fewer_frames.run_dirs import run_files
from fewer_frames.serving import batch_inference, video_inference
from testlib import Started, read_csv, reference_frame_indices, run_binary, run_inference

SECONDS = 14  # at 10 frames per second, a keyframe every 2 s
FPS = 10
KEYFRAME_SECONDS = 2


@pytest.fixture(scope="module")
def clips(tmp_path_factory, feature_models):
    """Three videos, their CSV, and their records as extract_features.py writes them."""
    folder = tmp_path_factory.mktemp("clips")
    lines = []
    for index, seconds in enumerate((SECONDS, SECONDS - 3, 2)):
        path = folder / f"clip{index}.mp4"
        generated_videos.write_video(
            str(path),
            seconds + 0.5,
            frames_per_second=FPS,
            keyframe_seconds=KEYFRAME_SECONDS,
            audio=index != 1,
            seed=index,
        )
        lines.append(f"{path},{index}")
    csv_path = folder / "clips.csv"
    csv_path.write_text("\n".join(lines) + "\n")
    records = folder / "clips.tfrecord"
    run_binary(
        "extract_features.py",
        f"--input_videos_csv={csv_path}",
        f"--output_tfrecords_file={records}",
        f"--model_dir={feature_models}",
    )
    return csv_path, str(records)


def _config(train_dir, models, **changes):
    config = run_files.read_model_config(f"{train_dir}/{run_files.MODEL_FLAGS_FILE}")
    return dataclasses.replace(config.with_models(models), **changes)


def _scores(path):
    return {video: dict(zip(*pairs, strict=True)) for video, pairs in read_csv(path).items()}


def _assert_same_predictions(first, second):
    assert sorted(first) == sorted(second)
    for video in first:
        common = set(first[video]) & set(second[video])
        assert len(common) >= 15, video  # the same top classes, but for ties at the edge
        for label in common:
            assert first[video][label] == pytest.approx(second[video][label], abs=2e-4)


def _gop_cost(steps, references):
    """Frames decoded to reach the frames of `steps` (seconds, sorted) in videos of
    FPS frames a second and a keyframe every KEYFRAME_SECONDS: in each group of
    pictures, from its keyframe on to its last step, the frames others refer to
    and the steps' own."""
    last_step = {}
    for step in steps:
        last_step[step // KEYFRAME_SECONDS] = step
    wanted = {step * FPS for step in steps}
    return sum(
        len({*range(group * KEYFRAME_SECONDS * FPS, last * FPS + 1)} & (references | wanted))
        for group, last in last_step.items()
    )


def _full_gop_cost(steps):
    """The same, decoding every frame from the keyframe on."""
    last_step = {}
    for step in steps:
        last_step[step // KEYFRAME_SECONDS] = step
    return sum((last - group * KEYFRAME_SECONDS) * FPS + 1 for group, last in last_step.items())


@pytest.mark.parametrize("rule", frame_selection.RULES)
def test_student_on_video_files_equals_the_two_step_path(
    rule, shared_run, clips, feature_models, tmp_path
):
    csv_path, records = clips
    train_dir = shared_run("student")
    config = _config(train_dir, ["student"], frame_selection=rule, num_student_frames=4)
    # 4 frames in 2 chunks of 2 (the run's 5 chunks were cut from 30 frames)
    params = dataclasses.replace(config.model_params, student_num_inputs_to_lstm=2)
    config = dataclasses.replace(config, model_params=params)
    batch_inference.run_inference(config, train_dir, records, str(tmp_path / "records.csv"), 20)
    entries = video_list.read_video_list(str(csv_path), config.dataset_version)
    extraction = settings.ExtractionSettings(config.dataset_version, model_dir=feature_models)
    with video_inference.records_of_videos(config, entries, extraction) as (pattern, report):
        batch_inference.run_inference(config, train_dir, pattern, str(tmp_path / "videos.csv"), 20)
    _assert_same_predictions(_scores(tmp_path / "records.csv"), _scores(tmp_path / "videos.csv"))
    wanted = video_inference.student_steps(config)
    counts = (15, 12, 3)  # the steps of 14.5 s, 11.5 s and 2.5 s
    chosen = [wanted(entry.path, count) for entry, count in zip(entries, counts, strict=True)]
    assert [len(steps) for steps in chosen] == [min(4, count) for count in counts]
    assert report.frames_embedded == sum(len(steps) for steps in chosen)
    references = [reference_frame_indices(entry.path, FPS) for entry in entries]
    assert report.frames_decoded == sum(
        _gop_cost(steps, refs) for steps, refs in zip(chosen, references, strict=True)
    )
    # Frames no other frame refers to are skipped while rolling forward.
    if any(len(steps) > 1 for steps in chosen):
        assert report.frames_decoded < sum(_full_gop_cost(steps) for steps in chosen)


def test_binary_classifies_video_files_with_the_teacher_and_the_student(
    shared_run, clips, feature_models, tmp_path
):
    """inference.py --input_videos_csv: the teacher decodes every frame, the student
    (its run's own rule, every 10th frame) only its own; each predicts as on the
    records."""
    csv_path, records = clips
    for name in ("teacher", "student"):
        train_dir = shared_run(name)
        run_inference(train_dir, records, tmp_path / f"{name}_records.csv")
        videos = (  # the student's as a glob
            f"--input_videos_csv={csv_path}"
            if name == "teacher"
            else f"--input_videos={csv_path.parent}/clip*.mp4"
        )
        result = run_binary(
            "inference.py",
            f"--train_dir={train_dir}",
            videos,
            f"--model_dir={feature_models}",
            f"--output_file={tmp_path / name}_videos.csv",
        )
        _assert_same_predictions(
            _scores(tmp_path / f"{name}_records.csv"), _scores(tmp_path / f"{name}_videos.csv")
        )
        decoded = int(result.stderr.split(" frames decoded")[0].rsplit(" ", 1)[1])
        if name == "teacher":
            assert decoded == (SECONDS + SECONDS - 3 + 2) * FPS + 3 * 5  # every frame
        else:  # the original stride: floor(15 / 10) = 1 frame of the first video, 1 of the second
            assert decoded == 2


def test_bad_video_files_are_named_and_the_others_predicted(
    shared_run, clips, feature_models, tmp_path
):
    csv_path, _ = clips
    listed = tmp_path / "videos.csv"
    (tmp_path / "notes.mp4").write_text("not a video")
    good = f"{csv_path.parent}/clip0.mp4"
    listed.write_text(f"{tmp_path}/missing.mp4,1\n{good},2\n{tmp_path}/notes.mp4,\n")
    result = run_binary(
        "inference.py",
        f"--train_dir={shared_run('student')}",
        f"--input_videos_csv={listed}",
        f"--model_dir={feature_models}",
        f"--output_file={tmp_path / 'predictions.csv'}",
        check=False,
    )
    assert result.returncode == 1
    assert f"{tmp_path}/missing.mp4: no such file" in result.stderr
    assert f"{tmp_path}/notes.mp4: not a video file FFmpeg can read" in result.stderr
    dead_letter = tmp_path / "predictions.failed.csv"
    assert (
        f"2 of 3 videos failed (each named above, listed in {dead_letter}); the predictions "
        "of the other 1"
    ) in result.stderr
    assert list(read_csv(tmp_path / "predictions.csv")) == [good]
    missing, notes = dead_letter.read_text().splitlines()
    assert missing == f"{tmp_path}/missing.mp4,1,{tmp_path}/missing.mp4: no such file"
    assert notes.startswith(f"{tmp_path}/notes.mp4,,")
    assert f"{tmp_path}/notes.mp4: not a video file FFmpeg can read" in notes


def test_a_litert_student_classifies_video_files(shared_run, clips, feature_models, tmp_path):
    """--litert_model with --input_videos_csv: the export's student sees only its
    frames, and predicts as the export does on the records."""
    csv_path, records = clips
    train_dir = shared_run("student")
    export = tmp_path / "litert"
    run_binary(
        "export_model.py", f"--train_dir={train_dir}", f"--export_dir={export}", "--format=litert"
    )
    run_binary(
        "inference.py",
        f"--litert_model={export}",
        f"--input_data_pattern={records}",
        f"--output_file={tmp_path / 'records.csv'}",
    )
    result = run_binary(
        "inference.py",
        f"--litert_model={export}",
        f"--input_videos_csv={csv_path}",
        f"--model_dir={feature_models}",
        f"--output_file={tmp_path / 'videos.csv'}",
    )
    assert "LiteRT model" in result.stderr and " 2 frames decoded" in result.stderr
    _assert_same_predictions(_scores(tmp_path / "records.csv"), _scores(tmp_path / "videos.csv"))


def test_standard_input_is_classified_line_by_line_with_one_load(
    shared_run, clips, feature_models, tmp_path
):
    """--input_videos_csv=-: each line's row is written before the next line is
    sent; a bad line is named and listed; the rows equal those of the same
    videos listed in a file; the run is restored once."""
    csv_path, _ = clips
    videos = [f"{csv_path.parent}/clip{index}.mp4" for index in (0, 1)]
    train_dir = shared_run("student")
    listed = tmp_path / "listed.csv"
    listed.write_text("".join(f"{video},{index}\n" for index, video in enumerate(videos)))
    run_binary(
        "inference.py",
        f"--train_dir={train_dir}",
        f"--input_videos_csv={listed}",
        f"--model_dir={feature_models}",
        f"--output_file={tmp_path / 'listed_predictions.csv'}",
    )
    output = tmp_path / "streamed.csv"

    def rows_written():
        return output.read_text().count("\n") if os.path.exists(output) else -1

    started = Started(
        tmp_path / "log",
        "inference.py",
        f"--train_dir={train_dir}",
        "--input_videos_csv=-",
        f"--model_dir={feature_models}",
        f"--output_file={output}",
        stdin=subprocess.PIPE,
    )
    # the header once the models are loaded; each row before the next line is sent
    needed = [1, 2, 2]
    status, log = started.fed(
        [f"{videos[0]},0", f"{tmp_path}/missing.mp4,3", f"{videos[1]},1"],
        lambda sent: rows_written() >= needed[sent],
    )
    assert status == 1, log[-3000:]
    assert "1 of 3 videos failed (each named above, listed in" in log
    assert "<stdin>:2" not in log  # a good line: its video is what failed
    assert f"{tmp_path}/missing.mp4: no such file" in log
    assert output.read_text() == (tmp_path / "listed_predictions.csv").read_text()
    assert (tmp_path / "streamed.failed.csv").read_text() == (
        f"{tmp_path}/missing.mp4,3,{tmp_path}/missing.mp4: no such file\n"
    )
    restored = [line for line in log.splitlines() if "saver.py" in line and "Restoring" in line]
    assert len(restored) == 2, restored  # VGGish's checkpoint and the run's, once
