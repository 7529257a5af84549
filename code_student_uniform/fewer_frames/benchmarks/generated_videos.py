"""Video files whose content is known per second, written with PyAV: the picture is
one colour per second (`colour(second)`, the mean of every frame of that second)
and the audio one tone per second and channel (`tone_hertz(second, channel)`), so
that the frame and sound of each second can be recognised after decoding. Used by
the feature benchmark and the tests.

By default the picture also moves from frame to frame (two squares, one lighter
and one darker by the same amount, sliding apart), so that each frame differs
from the next as in real video, and the codec predicts across frames; the
squares leave the frame's mean colour unchanged."""

import fractions

import numpy as np

from fewer_frames.features.video_files import import_av

AUDIO_RATE = 44100


def colour(second, seed=0):
    """The RGB colour of `second`: far from those of its neighbours."""
    rng = np.random.default_rng([seed, second])
    base = np.array([(second * 97) % 256, (second * 57 + 80) % 256, (second * 23 + 160) % 256])
    return ((base + rng.integers(0, 16, 3)) % 256).astype(np.uint8)


def tone_hertz(second, channel=0):
    """The tone of `second` (a number or an array) in `channel`: 300 Hz to 2400
    Hz, a step of 300 Hz per second, on the left; 1.5 times that on the right, so
    a decoder that kept one channel instead of averaging them is seen."""
    return 300.0 * (1 + second % 8) * (1 + 0.5 * channel)


def frame_picture(second, width, height, seed=0, texture=False, frame=None):
    """The picture of `second`: its colour, plus a fixed texture when asked (so an
    encoder has real detail to code, as in a benchmark), plus the moving squares
    at the `frame`-th frame of the video (None: no squares)."""
    picture = np.empty([height, width, 3], np.uint8)
    picture[:] = colour(second, seed)
    if texture:
        rows, columns = np.mgrid[0:height, 0:width]
        picture[..., 0] ^= ((rows // 8 + columns // 8 + second) % 2 * 64).astype(np.uint8)
    if frame is not None:
        _add_moving_squares(picture, frame)
    return picture


def _add_moving_squares(picture, frame):
    """A lighter square in the top half sliding right and a darker one in the
    bottom half sliding left, by `frame`; their contrast also changes with the
    frame. Equal and opposite, clipped by neither, so the mean is unchanged."""
    height, width, _ = picture.shape
    side = max(2, min(height // 2, width // 2) // 2 * 2)
    travel = width - side + 1
    left = (3 * frame) % travel
    base = picture[0, 0].astype(int)
    step = np.minimum(np.minimum(base, 255 - base), 16 + 8 * (frame % 4))
    top, bottom = (height // 2 - side) // 2, height // 2 + (height // 2 - side) // 2
    picture[top : top + side, left : left + side] = base + step
    mirrored = travel - 1 - left
    picture[bottom : bottom + side, mirrored : mirrored + side] = base - step


def tone(seconds, channels=2, rate=AUDIO_RATE):
    """[channels, samples] float32: each channel's tone of each second, at 0.3 amplitude."""
    times = np.arange(int(round(seconds * rate))) / rate
    waves = []
    for channel in range(channels):
        frequencies = tone_hertz(times.astype(int), channel)
        waves.append(0.3 * np.sin(2 * np.pi * np.cumsum(frequencies) / rate))
    return np.array(waves, np.float32)


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
    motion=True,
    b_frames=3,
    audio_options=None,
    scene_seconds=1,
):
    """Writes a video (yuv420p) with stereo audio (unless `audio` is False) in
    the container the path's extension names: H.264 and AAC, or FFmpeg's
    (video, audio) encoders `codecs`. `frame_times`: each frame's time in
    seconds, for a variable frame rate (default: `frames_per_second` evenly);
    `keyframe_seconds`: the keyframe interval (default: the encoder's), with the
    keyframes after the first at `keyframe_phase` + j * interval seconds;
    `motion`: the moving squares in every frame; `b_frames`: at most that many
    B-frames in a row (H.264); `audio_options`: the audio encoder's options;
    `scene_seconds`: how long each picture's colour lasts (a cut between, which
    x264's own keyframe placement marks).
    `frames_per_second` may be a Fraction (30000/1001)."""
    av = import_av()
    # Timestamps in frames at a constant rate (what every container stores), in
    # milliseconds for a variable one.
    ticks = 1000 if frame_times is not None else fractions.Fraction(frames_per_second)
    if frame_times is None:
        count = int(round(seconds * frames_per_second))
        frame_times = [float(index / ticks) for index in range(count)]
    with av.open(path, "w") as container:
        video = container.add_stream(codecs[0], rate=frames_per_second)
        video.width, video.height, video.pix_fmt = width, height, "yuv420p"
        time_base = 1 / fractions.Fraction(ticks)
        video.time_base = video.codec_context.time_base = time_base
        options = {"crf": "12", "preset": "veryfast"}
        x264_params = [f"bframes={b_frames}"]
        forced = bool(keyframe_seconds and keyframe_phase)
        if keyframe_seconds and not forced:
            gop = max(1, int(round(keyframe_seconds * frames_per_second)))
            video.codec_context.gop_size = gop
            x264_params += [f"keyint={gop}", f"min-keyint={gop}", "scenecut=0"]
        elif forced:  # keyframes only where the frames ask for them
            options["forced-idr"] = "1"
            x264_params += ["keyint=infinite", "scenecut=0"]
        if codecs[0] == "libx264":
            options["x264-params"] = ":".join(x264_params)
        video.options = options
        sound = None
        if audio:
            sound = container.add_stream(codecs[1], rate=audio_rate)
            sound.layout = "stereo"
            sound.options = dict(audio_options or {})
        pictures = {}  # without motion, one picture a second, made once
        for index, time in enumerate(frame_times):
            second = int(time // scene_seconds)
            if motion:
                picture = frame_picture(second, width, height, seed, texture, frame=index)
            else:
                if second not in pictures:
                    pictures = {second: frame_picture(second, width, height, seed, texture)}
                picture = pictures[second]
            frame = av.VideoFrame.from_ndarray(picture, format="rgb24")
            if forced:
                since = (time - keyframe_phase) / keyframe_seconds
                if time == 0 or (since >= 0 and abs(since - round(since)) < 1e-6):
                    frame.pict_type = av.video.frame.PictureType.I
            frame.pts = int(round(time * ticks))
            frame.time_base = time_base
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
