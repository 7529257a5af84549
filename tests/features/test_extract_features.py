"""extract_features.py: video files to the records of the release, checked against
independent computations of the recipe, read back by the project's readers, and
trained on and predicted from by the binaries."""

import glob
import os
import pathlib
import signal
import subprocess

import feature_oracles
import numpy as np
import tensorflow as tf

import testlib
from fewer_frames.benchmarks import generated_videos
from fewer_frames.features import video_files
from fewer_frames.inputs import readers
from testlib import (
    TINY_RUN,
    Started,
    dequantize,
    read_all_batches,
    read_csv,
    run_binary,
    run_inference,
)


def extract(csv_path, output, model_dir, *flags, check=True):
    return run_binary(
        "extract_features.py",
        f"--input_videos_csv={csv_path}",
        f"--output_tfrecords_file={output}",
        f"--model_dir={model_dir}",
        "--frames_per_batch=2",
        *flags,
        check=check,
    )


def parsed_records(path):
    records = []
    for serialized in tf.compat.v1.io.tf_record_iterator(path):
        example = tf.train.SequenceExample.FromString(serialized)
        context = example.context.feature
        lists = example.feature_lists.feature_list
        records.append(
            {
                "id": context["id"].bytes_list.value[0].decode(),
                "labels": list(context["labels"].int64_list.value),
                "mean_rgb": np.array(context["mean_rgb"].float_list.value),
                "mean_audio": np.array(context["mean_audio"].float_list.value),
                **{
                    name: np.array(
                        [
                            np.frombuffer(f.bytes_list.value[0], np.uint8)
                            for f in lists[name].feature
                        ]
                    )
                    for name in ("rgb", "audio")
                },
            }
        )
    return records


def test_features_follow_the_release_recipe(tmp_path, feature_models, videos):
    """Bytes of every second within one step of the recipe computed independently:
    the frame shown at each second (brute-force decode), Inception fed one frame at
    a time as Google's extractor feeds it, PCA and rounding in float64; audio from
    a numpy log-mel, a numpy VGGish and its PCA, truncated; silence for a video
    without audio, computed, not zeros."""
    csv_path = tmp_path / "videos.csv"
    csv_path.write_text(f"{videos['tone.mp4']},3;17\n{videos['silent.mp4']},\n")
    output = tmp_path / "features.tfrecord"
    result = extract(csv_path, output, feature_models)
    assert f"{videos['silent.mp4']}: no audio stream" in result.stderr
    tone, silent = parsed_records(str(output))
    assert (tone["id"], tone["labels"]) == (videos["tone.mp4"], [3, 17])
    assert (silent["id"], silent["labels"]) == (videos["silent.mp4"], [])

    for record, name in ((tone, "tone.mp4"), (silent, "silent.mp4")):
        frames, times = feature_oracles.frames_of_seconds(videos[name])
        assert len(record["rgb"]) == len(record["audio"]) == len(frames)
        # At 30000/1001 frames a second, second 1's frame is shown from 1.001 s: the
        # picture at 1 s is second 0's last.
        seconds = [int(time) for time in times]
        assert seconds == ([0, 0, 1, 2, 3] if name == "tone.mp4" else [0, 1, 2])
        for second, frame in zip(seconds, frames, strict=True):  # picked by the frame's time
            expected = generated_videos.colour(second).astype(float)
            assert np.abs(frame.reshape(-1, 3).mean(axis=0) - expected).max() < 6, second
        pool = feature_oracles.inception_pool(
            f"{feature_models}/classify_image_graph_def.pb", frames
        )
        rgb = feature_oracles.rgb_pca(pool, feature_models)
        expected_codes = feature_oracles.rgb_codes(rgb)
        assert np.abs(record["rgb"].astype(int) - expected_codes).max() <= 1
        assert (record["rgb"] == expected_codes).mean() > 0.97  # off by one: float32 only
        assert record["rgb"].std() > 20  # the features are not saturated
        np.testing.assert_allclose(record["mean_rgb"], rgb.mean(axis=0), atol=2e-3)
    assert len(tone["rgb"]) == 5  # 4.5 s: seconds 0 to 4
    assert len(silent["rgb"]) == 3  # 3.0 s: the last frame is at 2.96 s, before second 3

    reader = video_files.VideoReader(videos["tone.mp4"], 1, 300, 8)
    list(reader.batches())
    waveform = reader.audio.waveform
    for second in range(4):  # the sound of each second: both channels' tones, averaged
        middle = waveform[second * 16000 + 4000 : second * 16000 + 12000]
        spectrum = np.abs(np.fft.rfft(middle))
        strongest = sorted(np.argsort(spectrum)[-2:] * 16000 / len(middle))
        tones = [generated_videos.tone_hertz(second, channel) for channel in (0, 1)]
        np.testing.assert_allclose(strongest, tones, atol=3, err_msg=f"second {second}")
        assert spectrum.max() < 1.3 * np.sort(spectrum)[-2]  # of equal strength
    for record, wave in ((tone, waveform), (silent, np.zeros([0]))):
        audio = feature_oracles.audio_features(wave, len(record["audio"]), feature_models)
        expected_codes = feature_oracles.audio_codes(audio)
        assert np.abs(record["audio"].astype(int) - expected_codes).max() <= 1
        assert (record["audio"] == expected_codes).mean() > 0.97
        np.testing.assert_allclose(record["mean_audio"], audio.mean(axis=0), atol=2e-3)
    assert (silent["audio"] == silent["audio"][0]).all()  # silence, the same every second
    assert not (silent["audio"] == 0).all()
    assert len({row.tobytes() for row in tone["audio"]}) == len(tone["audio"])


def test_the_readers_read_the_records(tmp_path, feature_models, videos):
    """The frame-level reader dequantises them to the codes' values; the
    video-level reader reads their mean_rgb and mean_audio."""
    csv_path = tmp_path / "videos.csv"
    csv_path.write_text(f"{videos['tone.mp4']},3;17\n")
    output = str(tmp_path / "features.tfrecord")
    extract(csv_path, output, feature_models)
    (record,) = parsed_records(output)
    frame_reader = readers.make_reader(True)
    batch = read_all_batches(
        readers.get_input_data_tensors(frame_reader, output, batch_size=1, num_epochs=1)
    )
    frames = len(record["rgb"])
    assert batch["num_frames"].tolist() == [frames]
    codes = np.concatenate([record["rgb"], record["audio"]], axis=1)
    np.testing.assert_allclose(batch["video_matrix"][0, :frames], dequantize(codes), atol=1e-5)
    assert np.flatnonzero(batch["labels"][0]).tolist() == [3, 17]
    video_reader = readers.make_reader(False)
    batch = read_all_batches(
        readers.get_input_data_tensors(video_reader, output, batch_size=1, num_epochs=1)
    )
    means = np.concatenate([record["mean_rgb"], record["mean_audio"]])
    np.testing.assert_allclose(batch["video_matrix"][0], means, rtol=1e-6)
    assert batch["video_ids"].tolist() == [videos["tone.mp4"].encode()]


def test_the_records_train_a_student_and_predict(tmp_path, feature_models, videos):
    """A folder of videos and a labels CSV to a trained student and its predictions,
    through the binaries, in shards of one video."""
    folder = tmp_path / "my_videos"
    folder.mkdir()
    lines = []
    for index in range(4):
        path = folder / f"clip{index}.mp4"
        generated_videos.write_video(str(path), 2 + index % 2, seed=index, audio=index != 1)
        lines.append(f"{path},{index % 2};{2 + index}")
    (tmp_path / "labels.csv").write_text("\n".join(lines) + "\n")
    output = tmp_path / "features" / "train.tfrecord"
    extract(tmp_path / "labels.csv", output, feature_models, "--videos_per_shard=3")
    shards = sorted(glob.glob(str(tmp_path / "features" / "*")))
    assert [os.path.basename(path) for path in shards] == [
        "train-00000-of-00002.tfrecord",
        "train-00001-of-00002.tfrecord",
        "train.progress",
    ]
    shards = shards[:2]
    assert [len(parsed_records(path)) for path in shards] == [3, 1]
    pattern = str(tmp_path / "features" / "train-*.tfrecord")
    train_dir = tmp_path / "run"
    run_binary(
        "train.py",
        f"--train_dir={train_dir}",
        f"--train_data_pattern={pattern}",
        "--training_mode=student_only",
        "--max_steps=2",
        "--every_n=2",
        *TINY_RUN,
    )
    run_inference(train_dir, pattern, tmp_path / "predictions.csv")
    rows = read_csv(tmp_path / "predictions.csv")
    assert sorted(rows) == sorted(line.split(",")[0] for line in lines)
    assert all(len(labels) == 20 for labels, _ in rows.values())


def _bad_inputs(folder, videos):
    """{CSV line: what the error must say} of videos and lines that cannot be used."""
    av = video_files.import_av()
    (folder / "notes.mp4").write_text("not a video\n")
    (folder / "empty.mp4").write_bytes(b"")
    with av.open(str(folder / "sound.m4a"), "w") as container:  # audio, no picture
        stream = container.add_stream("aac", rate=generated_videos.AUDIO_RATE)
        stream.layout = "stereo"
        frame = av.AudioFrame.from_ndarray(
            np.ascontiguousarray(generated_videos.tone(0.5)), format="fltp", layout="stereo"
        )
        frame.sample_rate, frame.pts = generated_videos.AUDIO_RATE, 0
        container.mux(stream.encode(frame))
        container.mux(stream.encode())
    return {
        f"{folder}/absent.mp4,1": f"{folder}/absent.mp4: no such file",
        f"{folder}/notes.mp4,1": f"{folder}/notes.mp4: not a video file FFmpeg can read",
        f"{folder}/empty.mp4,1": f"{folder}/empty.mp4: an empty file (0 bytes)",
        f"{folder}/sound.m4a,1": f"{folder}/sound.m4a: no video stream",
        f"{videos['tone.mp4']}": "videos.csv:5: expected `<video file>,<labels>`",
        f"{videos['tone.mp4']},1;x": "videos.csv:6: labels '1;x' are not integers",
        f"{videos['tone.mp4']},5;3862": (
            "videos.csv:7: label ids [3862] are not classes of the 2018 release (0 to 3861)"
        ),
    }


def test_bad_input_is_named_and_the_rest_written(tmp_path, feature_models, videos):
    """Each bad video or line is named with what is wrong; the good videos are
    written, a broken stream with what it kept; the exit status is 1."""
    bad = _bad_inputs(tmp_path, videos)
    generated_videos.write_video(str(tmp_path / "whole.mkv"), 8, audio=False)
    whole = (tmp_path / "whole.mkv").read_bytes()
    (tmp_path / "cut.mkv").write_bytes(whole[: len(whole) // 2])  # ends midway
    lines = [*bad, f"{videos['tone.mp4']},2", f"{tmp_path}/cut.mkv,4"]
    (tmp_path / "videos.csv").write_text("\n".join(lines) + "\n")
    output = tmp_path / "out" / "features.tfrecord"
    result = extract(tmp_path / "videos.csv", output, feature_models, check=False)
    assert result.returncode == 1, result.stderr[-3000:]
    for message in bad.values():
        assert message in result.stderr, message
    assert "ERROR: 7 of 9 videos failed" in result.stderr
    kept = parsed_records(str(output))
    assert [record["id"] for record in kept] == [videos["tone.mp4"], f"{tmp_path}/cut.mkv"]
    assert f"{tmp_path}/cut.mkv: the stream ends at" in result.stderr
    assert f"kept its first {len(kept[1]['rgb'])} frames" in result.stderr
    assert 2 <= len(kept[1]["rgb"]) < 7
    assert sorted(os.listdir(tmp_path / "out")) == [
        "features.failed.csv",
        "features.progress",
        "features.tfrecord",
    ]
    failed = (tmp_path / "out" / "features.failed.csv").read_text().splitlines()
    assert len(failed) == 7 and all(
        any(message in line for message in bad.values()) for line in failed
    )
    # Every step of every video from its exact frame: no keyframe alignment here.
    refused = extract(
        tmp_path / "videos.csv",
        tmp_path / "aligned.tfrecord",
        feature_models,
        "--frame_alignment=keyframe",
        check=False,
    )
    assert (
        refused.returncode == 1
        and "ERROR: extract_features.py makes the features of every step" in refused.stderr
    )
    assert not os.path.exists(tmp_path / "aligned.tfrecord")


def test_a_stopped_extraction_leaves_whole_files(tmp_path, feature_models, videos):
    """SIGTERM midway: the shards written are whole, the one being written is not
    there, nothing temporary is left."""
    (tmp_path / "videos.csv").write_text(f"{videos['tone.mp4']},1\n" * 60)
    output = tmp_path / "out" / "part.tfrecord"
    started = Started(
        tmp_path / "log",
        "extract_features.py",
        f"--input_videos_csv={tmp_path / 'videos.csv'}",
        f"--output_tfrecords_file={output}",
        f"--model_dir={feature_models}",
        "--videos_per_shard=2",
    )
    status, log = started.signal_when(lambda: "shard 2 of 30" in started.log(), signal.SIGTERM)
    assert status == 128 + signal.SIGTERM, log[-3000:]
    names = sorted(os.listdir(tmp_path / "out"))
    assert names[-1] == "part.progress"  # the receipts of the shards written
    names = names[:-1]
    assert 2 <= len(names) < 30, names
    assert names == [f"part-{index:05d}-of-00030.tfrecord" for index in range(len(names))]
    assert all(len(parsed_records(str(tmp_path / "out" / name))) == 2 for name in names)
    assert sorted(os.listdir(tmp_path / "out" / "part.progress")) == [f"{n}.json" for n in names]


def test_a_rerun_does_only_the_videos_not_yet_written(tmp_path, feature_models, videos):
    """After an interruption the same command, in this process or on Beam, skips
    the shards already written and writes the others as an uninterrupted run
    would; another command is refused rather than mixed in."""
    (tmp_path / "videos.csv").write_text(
        "".join(f"{videos[name]},{index}\n" for index in range(4) for name in videos)
    )
    output = tmp_path / "out" / "part.tfrecord"
    flags = ["--videos_per_shard=2", "--feature_threads=1"]
    extract(tmp_path / "videos.csv", output, feature_models, *flags)
    shards = sorted(glob.glob(str(tmp_path / "out" / "part-*")))
    assert len(shards) == 4
    written = {path: pathlib.Path(path).read_bytes() for path in shards}
    for rerun in ([], [testlib.BEAM_IN_MEMORY]):
        for path in shards[1::2]:  # as if stopped before these shards
            os.remove(path)
        result = extract(tmp_path / "videos.csv", output, feature_models, *flags, *rerun)
        assert "Skipping 2 of 4 shards written by an earlier run" in result.stderr
        done = "Beam counters: videos 4," if rerun else "Extracted 4 videos"
        assert done in result.stderr, result.stderr[-2000:]
        assert {path: pathlib.Path(path).read_bytes() for path in shards} == written
    result = extract(tmp_path / "videos.csv", output, feature_models, *flags, check=False)
    assert "Skipping 4 of 4 shards" in result.stderr and "Extracted 0 videos" in result.stderr
    result = extract(
        tmp_path / "videos.csv", output, feature_models, flags[0], "--max_frames=3", check=False
    )
    assert result.returncode == 1
    assert f"{shards[0]} exists but was not written by this command" in result.stderr


def test_standard_input_is_extracted_line_by_line(tmp_path, feature_models, videos):
    """--input_videos_csv=-: each video's record is in the file before the next
    line is sent; a bad line is named and listed; the file equals the one made
    from the same list in a file."""
    lines = [f"{videos['tone.mp4']},1", "one column", f"{videos['silent.mp4']},2"]
    (tmp_path / "listed.csv").write_text(f"{lines[0]}\n{lines[2]}\n")
    flags = ["--feature_threads=1"]
    extract(tmp_path / "listed.csv", tmp_path / "listed.tfrecord", feature_models, *flags)
    output = tmp_path / "streamed.tfrecord"

    def records_written():
        if not os.path.exists(output):
            return 0
        try:
            return sum(1 for _ in tf.compat.v1.io.tf_record_iterator(str(output)))
        except tf.errors.DataLossError:  # a record being written
            return 0

    started = Started(
        tmp_path / "log",
        "extract_features.py",
        "--input_videos_csv=-",
        f"--output_tfrecords_file={output}",
        f"--model_dir={feature_models}",
        "--frames_per_batch=2",
        *flags,
        stdin=subprocess.PIPE,
    )
    needed = [0, 1, 1]
    status, log = started.fed(lines, lambda sent: records_written() >= needed[sent])
    assert status == 1, log[-3000:]
    assert "<stdin>:2: expected `<video file>,<labels>`" in log
    assert "1 of 3 videos failed (each named above, listed in" in log
    assert output.read_bytes() == (tmp_path / "listed.tfrecord").read_bytes()
    assert (tmp_path / "streamed.failed.csv").read_text() == (
        'one column,,"<stdin>:2: expected `<video file>,<labels>`"\n'
    )
