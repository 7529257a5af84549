"""Video files whose content is known per second, written with PyAV: the picture is
one flat colour per second (`colour(second)`) and the audio one tone per second
(`tone_hertz(second)`), so that the frame and sound of each second can be
recognised after decoding. Used by the feature benchmark and the tests."""

import fractions

import numpy as np

from fewer_frames.features.video_files import import_av

AUDIO_RATE = 44100


def colour(second, seed=0):
    """The RGB colour of `second`: far from those of its neighbours."""
    rng = np.random.default_rng([seed, second])
    base = np.array([(second * 97) % 256, (second * 57 + 80) % 256, (second * 23 + 160) % 256])
    return ((base + rng.integers(0, 16, 3)) % 256).astype(np.uint8)


def tone_hertz(second):
    """The tone of `second`: 300 Hz to 2400 Hz, a step of 300 Hz per second."""
    return 300.0 * (1 + second % 8)


def frame_picture(second, width, height, seed=0, texture=False):
    """The picture of `second`: its flat colour, plus a fixed texture when asked
    (so an encoder has real detail to code, as in a benchmark)."""
    picture = np.empty([height, width, 3], np.uint8)
    picture[:] = colour(second, seed)
    if texture:
        rows, columns = np.mgrid[0:height, 0:width]
        picture[..., 0] ^= ((rows // 8 + columns // 8 + second) % 2 * 64).astype(np.uint8)
    return picture


def tone(seconds, channels=2, rate=AUDIO_RATE):
    """[channels, samples] float32: the tone of each second, at 0.3 amplitude."""
    times = np.arange(int(round(seconds * rate))) / rate
    frequencies = np.array([tone_hertz(second) for second in times.astype(int)])
    wave = 0.3 * np.sin(2 * np.pi * np.cumsum(frequencies) / rate)
    return np.repeat(wave[None].astype(np.float32), channels, axis=0)


def write_video(
    path,
    seconds,
    width=64,
    height=48,
    frames_per_second=25,
    keyframe_seconds=None,
    audio=True,
    frame_times=None,
    texture=False,
    seed=0,
    codecs=("libx264", "aac"),
    audio_rate=AUDIO_RATE,
    keyframe_phase=0.0,
):
    """Writes a video (yuv420p) with stereo audio (unless `audio` is False) in
    the container the path's extension names: H.264 and AAC, or FFmpeg's
    (video, audio) encoders `codecs`. `frame_times`: each frame's time in
    seconds, for a variable frame rate (default: `frames_per_second` evenly);
    `keyframe_seconds`: the keyframe interval (default: the encoder's), with the
    keyframes after the first at `keyframe_phase` + j * interval seconds."""
    av = import_av()
    # Timestamps in frames at a constant rate (what every container stores), in
    # milliseconds for a variable one.
    ticks = 1000 if frame_times is not None else frames_per_second
    if frame_times is None:
        frame_times = np.arange(int(round(seconds * frames_per_second))) / frames_per_second
    with av.open(path, "w") as container:
        video = container.add_stream(codecs[0], rate=frames_per_second)
        video.width, video.height, video.pix_fmt = width, height, "yuv420p"
        video.time_base = fractions.Fraction(1, ticks)
        video.codec_context.time_base = fractions.Fraction(1, ticks)
        video.options = {"crf": "12", "preset": "veryfast"}
        forced = bool(keyframe_seconds and keyframe_phase)
        if keyframe_seconds and not forced:
            gop = max(1, int(round(keyframe_seconds * frames_per_second)))
            video.codec_context.gop_size = gop
            video.options = {
                **video.options,
                "x264-params": f"keyint={gop}:min-keyint={gop}:scenecut=0",
            }
        elif forced:  # keyframes only where the frames ask for them
            video.options = {
                **video.options,
                "forced-idr": "1",
                "x264-params": "keyint=infinite:scenecut=0",
            }
        sound = None
        if audio:
            sound = container.add_stream(codecs[1], rate=audio_rate)
            sound.layout = "stereo"
        pictures = {}  # one picture a second, made once
        for time in frame_times:
            second = int(time)
            if second not in pictures:
                pictures = {second: frame_picture(second, width, height, seed, texture)}
            frame = av.VideoFrame.from_ndarray(pictures[second], format="rgb24")
            if forced:
                since = (time - keyframe_phase) / keyframe_seconds
                if time == 0 or (since >= 0 and abs(since - round(since)) < 1e-6):
                    frame.pict_type = av.video.frame.PictureType.I
            frame.pts = int(round(time * ticks))
            frame.time_base = fractions.Fraction(1, ticks)
            container.mux(video.encode(frame))
        container.mux(video.encode())
        if sound is not None:
            wave = tone(seconds, rate=audio_rate)
            step = 960  # what every encoder takes (Opus: 20 ms at 48 kHz)
            for start in range(0, wave.shape[1], step):
                frame = av.AudioFrame.from_ndarray(
                    np.ascontiguousarray(wave[:, start : start + step]),
                    format="fltp",
                    layout="stereo",
                )
                frame.sample_rate, frame.pts = audio_rate, start
                container.mux(sound.encode(frame))
            container.mux(sound.encode())
