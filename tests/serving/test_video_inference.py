"""Classifying video files: the student decodes and embeds only its frames, and
predicts what it predicts on the records of extract_features.py."""

import dataclasses
import os
import subprocess

import numpy as np
import pytest
import tensorflow as tf

from fewer_frames.benchmarks import generated_videos
from fewer_frames.config import settings
from fewer_frames.features import video_files, video_list
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


# Videos for --frame_alignment=keyframe, 20.5 s at FPS: keyframes (after the one
# at 0 s) on the student's steps (0 and 10 s), 0.3 s after every second, half
# way between them (5 s and 15 s), and half a second after 0 s and 10 s.
KEYFRAMES = {
    "on_steps": {"keyframe_seconds": 10},
    "offset": {"keyframe_seconds": 1, "keyframe_phase": 0.3},
    "far": {"keyframe_seconds": 10, "keyframe_phase": 5},
    "tie": {"keyframe_seconds": 10, "keyframe_phase": 0.5},
}


@pytest.fixture(scope="module")
def keyframe_clips(tmp_path_factory):
    folder = tmp_path_factory.mktemp("keyframe_clips")
    for name, keyframes in KEYFRAMES.items():
        generated_videos.write_video(
            str(folder / f"{name}.mp4"), 20.5, frames_per_second=FPS, seed=3, **keyframes
        )
    return folder


def test_keyframe_alignment_decodes_keyframes_alone_and_changes_nothing_else(
    shared_run, keyframe_clips, feature_models, tmp_path
):
    """The student's steps (0 and 10 s) on videos whose keyframes are on them, 5 s
    away or 0.3 s after them: only the last is approximated, its step 10 from its
    keyframe alone; the others predict what the exact student does."""
    listed = tmp_path / "videos.csv"
    videos = ("on_steps", "far", "offset")
    listed.write_text("".join(f"{keyframe_clips}/{video}.mp4,1\n" for video in videos))

    def classify(alignment):
        output = tmp_path / f"{alignment}.csv"
        result = run_binary(
            "inference.py",
            f"--train_dir={shared_run('student')}",
            f"--input_videos_csv={listed}",
            f"--model_dir={feature_models}",
            f"--output_file={output}",
            f"--frame_alignment={alignment}",
        )
        decoded = int(result.stderr.split(" frames decoded")[0].rsplit(" ", 1)[1])
        rows = dict(line.split(",", 1) for line in output.read_text().splitlines())
        return rows, decoded, result.stderr

    exact, aligned = classify("exact"), classify("keyframe")
    for video in ("on_steps", "far"):
        path = f"{keyframe_clips}/{video}.mp4"
        assert aligned[0][path] == exact[0][path], video
    assert "6 embedded (1 of them a keyframe near their time)" in aligned[2]
    assert "a keyframe near their time" not in exact[2]
    # 10 s of offset.mp4: the keyframe at 10.3 s alone, not the frames from the one
    # at 9.3 s on to the frame at 10 s.
    assert aligned[1] < exact[1] - 1


def test_keyframe_aligned_records_give_each_steps_picture_time(
    shared_run, keyframe_clips, feature_models
):
    train_dir = shared_run("student")
    config = _config(train_dir, ["student"], num_student_frames=4)
    params = dataclasses.replace(config.model_params, student_num_inputs_to_lstm=2)
    config = dataclasses.replace(config, model_params=params)
    entries = video_list.glob_video_list(f"{keyframe_clips}/offset.mp4")
    extraction = settings.ExtractionSettings(
        config.dataset_version, model_dir=feature_models, frame_alignment="keyframe"
    )
    with video_inference.records_of_videos(config, entries, extraction) as (pattern, report):
        (record,) = [bytes(r) for r in tf.compat.v1.io.tf_record_iterator(pattern)]
    example = tf.train.SequenceExample.FromString(record)
    shown = example.context.feature["step_picture_seconds"].float_list.value
    wanted = video_inference.student_steps(config)(entries[0].path, 21)
    assert len(wanted) == 4 and wanted[0] == 0
    expected = [-1.0] * 21
    for step in wanted:
        expected[step] = 0.0 if step == 0 else step + 0.3
    assert list(shown) == pytest.approx(expected, abs=1e-6)
    assert report.steps_approximated == 3


def _aligned_reader(path, tolerance=0.5):
    return video_files.SparseVideoReader(path, 1.0, 300, 32, range, "keyframe", tolerance)


def _pictures(reader):
    return {
        int(step): frame
        for steps, frames in reader.batches()
        for step, frame in zip(steps, frames, strict=True)
    }


def test_two_steps_never_share_a_keyframe(keyframe_clips):
    """Steps 10 and 11 s are both 0.5 s from the keyframe at 10.5 s: the first takes
    it, the second is decoded exactly."""
    reader = _aligned_reader(f"{keyframe_clips}/tie.mp4")
    pictures = _pictures(reader)
    assert reader.picture_seconds[10] == pytest.approx(10.5)
    assert reader.picture_seconds[11] == pytest.approx(11.0)
    assert reader.picture_seconds[0] == 0.0 and reader.picture_seconds[1] == pytest.approx(0.5)
    assert reader.stats.steps_approximated == 2  # 1 s and 10 s
    exact = video_files.SparseVideoReader(f"{keyframe_clips}/tie.mp4", 1.0, 300, 32, range)
    exact_pictures = _pictures(exact)
    assert sorted(pictures) == sorted(exact_pictures) == list(range(21))
    differ = [s for s in pictures if not np.array_equal(pictures[s], exact_pictures[s])]
    assert differ == [1, 10]


def test_each_approximated_step_decodes_one_frame(keyframe_clips):
    """A keyframe 0.3 s after every second: every step but the first (on its own
    keyframe) takes the next keyframe, decoded alone: one frame a step."""
    reader = _aligned_reader(f"{keyframe_clips}/offset.mp4")
    assert sorted(_pictures(reader)) == list(range(21))
    assert reader.stats.steps_approximated == 20
    assert reader.stats.frames_decoded == 21
    for step in range(1, 21):
        assert reader.picture_seconds[step] == pytest.approx(step + 0.3)


def test_a_wrong_or_missing_keyframe_index_falls_back_to_exact_frames(keyframe_clips, monkeypatch):
    path = f"{keyframe_clips}/far.mp4"
    exact = _pictures(video_files.SparseVideoReader(path, 1.0, 300, 32, range))
    real = video_files.read_timeline

    def listed(keyframes):
        def timeline(container, video):
            found = real(container, video)
            return dataclasses.replace(found, keyframe_times=np.array(keyframes))

        return timeline

    # 3.2 s is no keyframe (the file's are 0, 5 and 15 s): step 3 is decoded exactly.
    monkeypatch.setattr(video_files, "read_timeline", listed([0.0, 3.2, 5.0, 15.0]))
    reader = _aligned_reader(path)
    pictures = _pictures(reader)
    assert reader.warnings == [
        f"{path}: no keyframe at 3.200 s where the index puts one; its step decoded exactly"
    ]
    assert reader.stats.steps_approximated == 0 and reader.picture_seconds[3] == 3.0
    assert all(np.array_equal(pictures[step], exact[step]) for step in exact)
    monkeypatch.setattr(video_files, "read_timeline", listed([]))
    reader = _aligned_reader(path)
    pictures = _pictures(reader)
    assert reader.warnings == [
        f"{path}: no packet is flagged as a keyframe; every step decoded exactly"
    ]
    assert all(np.array_equal(pictures[step], exact[step]) for step in exact)
