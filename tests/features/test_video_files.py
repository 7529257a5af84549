"""Decoding: the frame shown at each time step, at any frame rate, and the
log-mel of the audio against a direct numpy computation of VGGish's recipe."""

import feature_oracles
import numpy as np
import pytest
import tensorflow as tf

from fewer_frames.benchmarks import generated_videos
from fewer_frames.features import log_mel, video_files
from testlib import reference_frame_indices


def _decoded(reader):
    """(steps, frames) of all a reader's batches."""
    batches = list(reader.batches())
    return (
        np.concatenate([steps for steps, _ in batches]),
        np.concatenate([frames for _, frames in batches]),
    )


def _steps(path, frames_per_second=1.0, max_frames=300):
    """Which second's picture each step got; the sparse reader, asked for every
    step, decodes the same frames."""
    reader = video_files.VideoReader(str(path), frames_per_second, max_frames, 3)
    steps, frames = _decoded(reader)
    assert steps.tolist() == list(range(reader.steps))
    sparse = video_files.SparseVideoReader(
        str(path), frames_per_second, max_frames, 2, lambda count: None
    )
    sparse_steps, sparse_frames = _decoded(sparse)
    assert sparse.steps == reader.steps and sparse_steps.tolist() == steps.tolist()
    np.testing.assert_array_equal(sparse_frames, frames)
    colours = [generated_videos.colour(second).astype(float) for second in range(12)]
    seconds = []
    for frame in frames:  # which second's picture each step got
        distances = [np.abs(frame.reshape(-1, 3).mean(axis=0) - c).max() for c in colours]
        assert min(distances) < 6
        seconds.append(int(np.argmin(distances)))
    return seconds, reader


@pytest.mark.parametrize(
    "frame_times, frames_per_second, max_frames, expected",
    [
        # variable frame rate: the frame on screen at 1 s is the one from 0.5 s
        ([0, 0.5, 1.7, 2.0, 2.9, 3.1, 4.1], 1.0, 300, [0, 0, 2, 2, 3]),
        # a stream that starts late gives its first frame to the steps before it
        ([0.3, 1.2, 2.5], 1.0, 300, [0, 0, 1]),
        # the last frame shown exactly at a step's time gives that step its picture
        ([0, 0.5, 1.0, 2.0], 1.0, 300, [0, 1, 2]),
        # two steps a second, capped at --max_frames
        ([0, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0], 2.0, 5, [0, 0, 1, 1, 2]),
    ],
)
def test_the_frame_shown_at_each_step(
    tmp_path, frame_times, frames_per_second, max_frames, expected
):
    """Picture i of the generated videos belongs to second int(time of the frame)."""
    path = tmp_path / "video.mp4"
    generated_videos.write_video(
        str(path), frame_times[-1] + 0.1, frame_times=frame_times, audio=False
    )
    seconds, reader = _steps(path, frames_per_second, max_frames)
    assert seconds == expected
    assert reader.steps == len(expected)


def test_constant_rate_video_every_second_and_its_tone(tmp_path):
    path = tmp_path / "video.mp4"
    generated_videos.write_video(str(path), 6.5, frames_per_second=30, keyframe_seconds=2)
    seconds, reader = _steps(path)
    assert seconds == list(range(7))
    assert reader.stats.frames_decoded >= 6 * 30
    assert len(reader.audio.waveform) == pytest.approx(6.5 * 16000, abs=2000)
    assert reader.warnings == []


@pytest.mark.parametrize(
    "name, codecs, audio_rate",
    [
        ("clip.mov", ("mpeg4", "libmp3lame"), 44100),
        ("clip.webm", ("libvpx-vp9", "libopus"), 48000),
    ],
)
def test_other_containers_and_codecs(tmp_path, name, codecs, audio_rate):
    path = tmp_path / name
    generated_videos.write_video(
        str(path), 3.5, width=120, height=90, codecs=codecs, audio_rate=audio_rate
    )
    seconds, reader = _steps(path)
    assert seconds == [0, 1, 2, 3]
    assert len(reader.audio.waveform) == pytest.approx(3.5 * 16000, abs=2000)


def test_log_mel_matches_the_recipe_in_numpy():
    rng = np.random.default_rng(3)
    seconds = 2.5
    times = np.arange(int(seconds * 16000)) / 16000
    waveform = 0.4 * np.sin(2 * np.pi * 440 * times) + 0.05 * rng.normal(size=times.shape)
    with tf.Graph().as_default(), tf.compat.v1.Session() as session:
        computed = session.run(log_mel.log_mel(tf.constant(waveform, tf.float32)))
    expected = feature_oracles.log_mel(waveform)
    assert computed.shape == expected.shape == (1 + (len(waveform) - 400) // 160, 64)
    np.testing.assert_allclose(computed, expected, atol=2e-3)
    assert log_mel.samples_needed([0, 2, 1], 1.0) == (200 + 95) * 160 + 400
    assert log_mel.example_starts([0, 1, 2, 7], 2.0).tolist() == [0, 50, 100, 350]


# FFmpeg's AAC encoder fills some bands of these two-tone tracks with perceptual
# noise substitution, which the decoder draws from a generator that runs on from
# the track's start: a decode that starts elsewhere draws other noise there.
WITHOUT_NOISE_SUBSTITUTION = {"aac_pns": "0"}


@pytest.mark.parametrize(
    "name, codecs, audio_rate, placed, audio_options",
    [
        ("clip.mp4", ("libx264", "aac"), 44100, True, WITHOUT_NOISE_SUBSTITUTION),
        ("clip.mp4", ("libx264", "aac"), 22050, True, WITHOUT_NOISE_SUBSTITUTION),
        ("clip.mp4", ("libx264", "aac"), 44100, True, {}),  # with noise substitution
        ("clip.mov", ("mpeg4", "libmp3lame"), 44100, True, {}),
        # WebM's millisecond timestamps round Opus' first frame: the whole track
        ("clip.webm", ("libvpx-vp9", "libopus"), 48000, False, {}),
    ],
)
def test_the_sparse_reader_decodes_only_the_audio_of_its_steps(
    tmp_path, name, codecs, audio_rate, placed, audio_options
):
    """The audio of the wanted steps equals the whole track's decode sample for
    sample (the resampler in phase, the codec settled by the pre-roll), but for
    the noise that AAC's noise substitution draws; the samples between spans are
    never decoded."""
    path = tmp_path / name
    generated_videos.write_video(
        str(path),
        12.5,
        width=120,
        height=90,
        codecs=codecs,
        audio_rate=audio_rate,
        audio_options=audio_options,
    )
    noise_substitution = codecs[1] == "aac" and audio_options.get("aac_pns") != "0"
    whole = video_files.VideoReader(str(path), 1.0, 300, 8)
    _decoded(whole)
    wanted = [0, 5, 6, 11]  # spans from the start, of two steps, and near the end
    sparse = video_files.SparseVideoReader(str(path), 1.0, 300, 8, lambda count: wanted)
    _decoded(sparse)
    length = log_mel.samples_needed([0], 1.0)
    for step in wanted:
        span = slice(step * 16000, step * 16000 + length)
        expected = np.pad(whole.audio.waveform[span], (0, length))[:length]
        got = np.pad(sparse.audio.waveform[span], (0, length))[:length]
        if noise_substitution:  # the substituted bands' noise, at least 50 dB below
            assert np.sqrt(np.mean((got - expected) ** 2)) < 3e-3 * np.sqrt(np.mean(expected**2))
            assert np.abs(got - expected).max() < 2e-3
        else:
            np.testing.assert_array_equal(got, expected)
        assert np.abs(expected).max() > 0.1  # the tone, not silence
    # 1.5 s to 4.5 s and 7.5 s to 10.5 s: no step's example reaches them
    between = np.concatenate(
        [sparse.audio.waveform[24000:72000], sparse.audio.waveform[120000:168000]]
    )
    assert np.abs(between).max() == (0 if placed else pytest.approx(0.3, abs=0.05))


def test_the_sparse_reader_decodes_a_wanted_frame_that_no_other_refers_to(tmp_path):
    """Rolling forward it skips the frames no other frame refers to, but not a
    wanted one: every step here is such a frame (B-frames of H.264)."""
    path = tmp_path / "video.mp4"
    generated_videos.write_video(str(path), 6.5, frames_per_second=10, keyframe_seconds=2)
    references = reference_frame_indices(path, 10)
    full = video_files.VideoReader(str(path), 10.0, 300, 8)
    _, frames = _decoded(full)
    wanted = [step for step in range(full.steps) if step not in references][::4]
    assert len(wanted) >= 3
    sparse = video_files.SparseVideoReader(str(path), 10.0, 300, 8, lambda count: wanted)
    steps, sparse_frames = _decoded(sparse)
    assert steps.tolist() == wanted
    np.testing.assert_array_equal(sparse_frames, frames[wanted])


def test_the_sparse_reader_hands_on_its_first_frames_before_decoding_the_rest(tmp_path):
    """So that the network embeds them while it decodes on: its first batch comes
    before the later steps are decoded, batches of SPARSE_BATCH_FRAMES at most
    whatever batch size it was given, and the frames those of a full decode."""
    path = tmp_path / "video.mp4"
    generated_videos.write_video(str(path), 12.5, width=64, height=48, keyframe_seconds=2)
    wanted = [0, 2, 4, 6, 8, 10, 12]
    sparse = video_files.SparseVideoReader(str(path), 1.0, 300, 32, lambda count: wanted)
    batches = sparse.batches()
    first = next(batches)
    decoded_by_then = sparse.stats.frames_decoded
    rest = list(batches)
    assert first[0].tolist() == wanted[: video_files.SPARSE_BATCH_FRAMES]
    assert decoded_by_then < sparse.stats.frames_decoded
    assert all(len(steps) <= video_files.SPARSE_BATCH_FRAMES for steps, _ in rest)
    steps = np.concatenate([first[0]] + [steps for steps, _ in rest])
    frames = np.concatenate([first[1]] + [frames for _, frames in rest])
    _, full_frames = _decoded(video_files.VideoReader(str(path), 1.0, 300, 32))
    assert steps.tolist() == wanted
    np.testing.assert_array_equal(frames, full_frames[wanted])
