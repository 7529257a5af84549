"""Decoding video files with PyAV (FFmpeg): the RGB frame of each time step and the
16 kHz mono waveform, in one pass over the file.

The frame of time step i (i / --frames_per_second seconds, i < --max_frames) is the
frame shown at that time: the last frame whose presentation time is at or before
it (the first frame, for a stream that starts late). Steps run while that time is
at or before the last frame's, so a 4.5 s video gives 5 frames at 1 per second.
Times come from each frame's timestamp, so variable frame rates are followed.
Audio is resampled to 16 kHz by FFmpeg, its channels averaged.
"""

import dataclasses
import itertools
import math
import time

import numpy as np
import tensorflow as tf

from fewer_frames.features import log_mel
from fewer_frames.features.log_mel import SAMPLE_RATE
from fewer_frames.system import filesystem
from fewer_frames.system.errors import UserError

VIDEO_REQUIREMENTS = "requirements-video.txt"
# Frames a sparse reader hands on at once (SparseVideoReader.batches).
SPARSE_BATCH_FRAMES = 4


def import_av():
    """The `av` module (PyAV), or a UserError saying how to install it."""
    try:
        import av  # noqa: PLC0415 (optional: only decoding needs it)
    except ImportError as error:
        raise UserError(
            f"decoding video files needs PyAV: pip install -r {VIDEO_REQUIREMENTS}"
        ) from error
    return av


class VideoError(UserError):
    """A video that cannot be used: the message names the file and what is wrong."""


@dataclasses.dataclass
class DecodeStats:
    frames_decoded: int = 0
    seconds: float = 0.0
    steps_approximated: int = 0  # steps given a keyframe other than their exact frame


@dataclasses.dataclass
class DecodedAudio:
    """The 16 kHz mono waveform (None: the file has no audio stream)."""

    waveform: np.ndarray | None


class VideoReader:
    """Iterates the RGB frames of a video's time steps in batches; afterwards
    `audio`, `steps`, `warnings` and `stats` tell the rest."""

    def __init__(self, path, frames_per_second, max_frames, batch_size):
        self.path = path
        self.frames_per_second = frames_per_second
        self.max_frames = max_frames
        self.batch_size = batch_size
        self.warnings = []
        self.steps = 0
        self.audio = DecodedAudio(None)
        self.stats = DecodeStats()
        self.wanted = range(0)  # the steps decoded, once known
        # The time (s) of each wanted step's picture, where it may differ from the
        # exact frame's (--frame_alignment=keyframe); empty otherwise.
        self.picture_seconds = {}
        self._yielded = 0

    def _open(self, av):
        if not tf.io.gfile.exists(self.path):
            raise VideoError(f"{self.path}: no such file")
        if tf.io.gfile.stat(self.path).length == 0:
            raise VideoError(f"{self.path}: an empty file (0 bytes)")
        source = (
            filesystem.local_path(self.path)
            if filesystem.is_local(self.path)
            else tf.io.gfile.GFile(self.path, "rb")
        )
        try:
            return av.open(source, metadata_errors="ignore")
        except (av.FFmpegError, ValueError) as error:
            raise VideoError(f"{self.path}: not a video file FFmpeg can read ({error})") from error

    def _video_stream(self, container, threads="AUTO"):
        """The video stream, decoded with FFmpeg's `threads` (frame and slice)."""
        if not container.streams.video:
            raise VideoError(f"{self.path}: no video stream")
        video = container.streams.video[0]
        video.thread_type = threads
        return video

    def batches(self):
        """Yields (steps, frames): the time steps (int [n]) and their uint8
        [n, height, width, 3] RGB frames, in order."""
        av = import_av()
        started = time.perf_counter()
        container = self._open(av)
        try:
            video = self._video_stream(container)
            audio = container.streams.audio[0] if container.streams.audio else None
            chunks = []
            resampler = None
            if audio is not None:
                resampler = av.AudioResampler(format="fltp", rate=SAMPLE_RATE)
            end_time = self.max_frames / self.frames_per_second
            steps = _StepPicker(self.frames_per_second, self.max_frames)
            batch = []
            streams = [video] + ([audio] if audio is not None else [])
            audio_done = audio is None
            broken = ""
            try:
                for packet in container.demux(streams):
                    for frame in packet.decode():
                        if packet.stream is audio:
                            for part in resampler.resample(frame):
                                chunks.append(_mono(part))
                                audio_done = (
                                    part.time or 0
                                ) + part.samples / SAMPLE_RATE > end_time
                            continue
                        self.stats.frames_decoded += 1
                        batch.extend(steps.take(frame))
                        while len(batch) >= self.batch_size:
                            self.stats.seconds += time.perf_counter() - started
                            yield self._numbered(batch[: self.batch_size])
                            started = time.perf_counter()
                            batch = batch[self.batch_size :]
                    if steps.full and (audio_done or steps.last_time > end_time + 1.0):
                        break
            except av.FFmpegError as error:
                if steps.last_frame is None:
                    raise VideoError(f"{self.path}: no frame could be decoded ({error})") from error
                broken = f"the stream breaks after {steps.last_time:.2f} s ({error})"
            if steps.last_frame is None:
                raise VideoError(f"{self.path}: the video stream holds no frames")
            batch.extend(steps.finish())
            declared = (container.duration or 0) / 1e6  # what the container says it holds
            if not broken and not steps.full and steps.last_time + 1.0 < min(declared, end_time):
                broken = f"the stream ends at {steps.last_time:.2f} s of {declared:.2f} s declared"
            if broken:
                self.warnings.append(f"{self.path}: {broken}; kept its first {steps.count} frames")
            if resampler is not None:
                chunks.extend(_mono(part) for part in resampler.resample(None))
        finally:
            container.close()
        self.steps = steps.count
        self.wanted = range(steps.count)
        if audio is None:
            self.warnings.append(f"{self.path}: no audio stream; its audio features are silence's")
        else:
            waveform = np.concatenate(chunks) if chunks else np.zeros([0], np.float32)
            self.audio = DecodedAudio(waveform.astype(np.float32))
        self.stats.seconds += time.perf_counter() - started
        if batch:
            yield self._numbered(batch)

    def _numbered(self, frames):
        first = self._yielded
        self._yielded += len(frames)
        return np.arange(first, self._yielded), np.stack(frames)


def _mono(frame):
    """A planar float audio frame's samples, its channels averaged."""
    return frame.to_ndarray().mean(axis=0)


class _StepPicker:
    """Picks the frame shown at each time step from frames in presentation order."""

    def __init__(self, frames_per_second, max_frames):
        self.frames_per_second = frames_per_second
        self.max_frames = max_frames
        self.count = 0
        self.last_frame = None
        self.last_time = 0.0
        self._last_rgb = None

    @property
    def full(self):
        return self.count >= self.max_frames

    def _step_time(self):
        return self.count / self.frames_per_second

    def _rgb(self):
        if self._last_rgb is None:
            self._last_rgb = self.last_frame.to_ndarray(format="rgb24")
        return self._last_rgb

    def take(self, frame):
        """The frames of the steps that end before `frame` is shown."""
        taken = []
        frame_time = frame.time if frame.time is not None else self.last_time
        if self.last_frame is None:
            self.last_frame = frame
        while not self.full and frame_time > self._step_time():
            taken.append(self._rgb())
            self.count += 1
        if frame is not self.last_frame:
            self.last_frame, self._last_rgb = frame, None
        self.last_time = frame_time
        return taken

    def finish(self):
        """The steps at or before the last frame's time."""
        taken = []
        while self.last_frame is not None and not self.full:
            if self._step_time() > self.last_time + 1e-6:
                break
            taken.append(self._rgb())
            self.count += 1
        return taken


@dataclasses.dataclass(frozen=True)
class Timeline:
    """A video stream's frame times and keyframe times in seconds (sorted), read
    from its packets without decoding."""

    frame_times: np.ndarray
    keyframe_times: np.ndarray

    def steps(self, frames_per_second, max_frames):
        """The time steps of the video (the full reader's count)."""
        if not len(self.frame_times):
            return 0
        last = self.frame_times[-1]
        return min(max_frames, int(np.floor(last * frames_per_second + 1e-6)) + 1)

    def frame_at(self, seconds):
        """The index of the frame shown at `seconds` (the first, before it starts)."""
        return max(0, int(np.searchsorted(self.frame_times, seconds + 1e-6, side="right")) - 1)

    def keyframe_before(self, seconds):
        index = np.searchsorted(self.keyframe_times, seconds + 1e-6, side="right") - 1
        return self.keyframe_times[max(0, index)] if len(self.keyframe_times) else 0.0

    def keyframe_near(self, seconds, tolerance):
        """The keyframe time nearest to `seconds` (the earlier of two as near), if
        within `tolerance`; else None."""
        index = int(np.searchsorted(self.keyframe_times, seconds))
        near = [
            float(self.keyframe_times[i])
            for i in (index - 1, index)
            if 0 <= i < len(self.keyframe_times)
        ]
        best = min(near, key=lambda time_: abs(time_ - seconds), default=None)
        return best if best is not None and abs(best - seconds) <= tolerance + 1e-6 else None


def _packet_time(packet):
    return float(packet.pts * packet.time_base)


def read_timeline(container, video):
    times, keyframes = [], []
    for packet in container.demux(video):
        if packet.pts is None or packet.size == 0:
            continue
        time_ = _packet_time(packet)
        times.append(time_)
        if packet.is_keyframe:
            keyframes.append(time_)
    return Timeline(np.sort(np.array(times)), np.sort(np.array(keyframes)))


class SparseVideoReader(VideoReader):
    """Decodes only the frames of the steps `wanted_steps(count)` asks for (None:
    every step): from the keyframe before each one forward to it; steps in one
    group of pictures are reached in one pass. The audio is decoded only around
    the steps' examples (_AudioSpans), sample for sample the whole decode's;
    `stats.frames_decoded` counts the video frames decoded.

    With `alignment="keyframe"` a step takes instead the keyframe nearest to its
    time when one lies within `tolerance` seconds, decoded alone (one frame, not
    the roll forward from the keyframe before the exact frame); a step with none, or whose
    keyframe an earlier step took, is decoded exactly. The keyframes are the
    packets' flags (read_timeline): a stream with none flagged, or whose keyframe
    is not where its index says, is decoded exactly, with a warning.
    `picture_seconds` then holds the time of every wanted step's picture."""

    def __init__(
        self,
        path,
        frames_per_second,
        max_frames,
        batch_size,
        wanted_steps,
        alignment="exact",
        tolerance=0.5,
    ):
        super().__init__(path, frames_per_second, max_frames, batch_size)
        self.wanted_steps = wanted_steps
        self.alignment = alignment
        self.tolerance = tolerance

    def batches(self):
        av = import_av()
        started = time.perf_counter()
        container = self._open(av)
        try:
            # Frame threads hold frames in flight: after each seek they decode past
            # the target before it comes out. Slice threads do not.
            video = self._video_stream(container, threads="SLICE")
            try:
                timeline = read_timeline(container, video)
            except av.FFmpegError as error:
                raise VideoError(
                    f"{self.path}: the video stream cannot be read ({error})"
                ) from error
            self.steps = timeline.steps(self.frames_per_second, self.max_frames)
            if not self.steps:
                raise VideoError(f"{self.path}: the video stream holds no frames")
            wanted = self.wanted_steps(self.steps)
            self.wanted = sorted(set(range(self.steps) if wanted is None else wanted))
            targets, alone = self._targets(timeline)
            # Targets in time order are steps in order. Small batches, handed on as
            # they decode: the network starts on the first while the others decode
            # (its cost per frame does not depend on the batch on a CPU).
            batch_size = min(self.batch_size, SPARSE_BATCH_FRAMES)
            steps, frames = [], []
            pictures = self._decode_targets(av, container, video, timeline, sorted(targets), alone)
            for target, picture in pictures:
                steps += targets[target]
                frames += [picture] * len(targets[target])
                if len(steps) >= batch_size:
                    self.stats.seconds += time.perf_counter() - started
                    yield np.array(steps), np.stack(frames)
                    started, steps, frames = time.perf_counter(), [], []
            if steps:
                self.stats.seconds += time.perf_counter() - started
                yield np.array(steps), np.stack(frames)
                started = time.perf_counter()
            self.audio = self._audio(av, container)
        finally:
            container.close()
        self.stats.seconds += time.perf_counter() - started

    def _targets(self, timeline):
        """({picture time: the wanted steps shown it}, {keyframe time decoded alone:
        the exact frame times of its steps, for a fall-back})."""
        exact = {
            step: float(timeline.frame_times[timeline.frame_at(step / self.frames_per_second)])
            for step in self.wanted
        }
        chosen, alone, taken = dict(exact), {}, set()
        if self.alignment == "keyframe":
            if not len(timeline.keyframe_times):
                self.warnings.append(
                    f"{self.path}: no packet is flagged as a keyframe; every step decoded exactly"
                )
            else:
                for step in self.wanted:
                    keyframe = timeline.keyframe_near(step / self.frames_per_second, self.tolerance)
                    if keyframe is None or keyframe in taken:
                        continue  # none near, or taken by the step before: exact
                    taken.add(keyframe)
                    if keyframe != exact[step]:  # (a keyframe of its own time is reached
                        chosen[step] = keyframe  # as cheaply on the exact path)
                        alone[keyframe] = exact[step]
        self._place(chosen, exact)
        targets = {}
        for step, time_ in chosen.items():
            targets.setdefault(time_, []).append(step)
        return targets, alone

    def _place(self, chosen, exact):
        """Records each step's picture time (keyframe alignment) and the count of
        those that differ from the exact frame's."""
        if self.alignment != "keyframe":
            return
        self.picture_seconds = dict(chosen)
        self.stats.steps_approximated = sum(
            abs(chosen[step] - exact[step]) > 1e-6 for step in chosen
        )

    def _decode_targets(self, av, container, video, timeline, targets, alone=None):
        """Yields (target time, RGB frame) of `targets` in order, decoding from the
        keyframe before each target (or on from the last one decoded, when no
        keyframe lies between). Rolling forward, the frames that no other frame
        refers to are not decoded, but for the targets (FFmpeg's skip_frame): the
        pictures are a full decode's. A target in `alone` (a keyframe: the exact
        frame time of its steps) is decoded by itself; if it is not a keyframe
        there, its steps' exact frames are decoded instead, with a warning."""
        alone = alone or {}
        wanted = set(targets) | set(alone.values())

        def decoded_frames():
            for packet in container.demux(video):
                is_target = packet.pts is not None and _packet_time(packet) in wanted
                video.codec_context.skip_frame = "DEFAULT" if is_target else "NONREF"
                yield from packet.decode()

        frames, position = None, None  # the decoder's output, the last frame's time
        for target in targets:
            if target in alone:
                picture = self._keyframe_alone(container, video, target)
                frames = None  # the decoder was drained: the next target seeks
                if picture is not None:
                    yield target, picture
                    continue
                self.warnings.append(
                    f"{self.path}: no keyframe at {target:.3f} s where the index puts one; "
                    "its step decoded exactly"
                )
                exact = alone[target]
                self.picture_seconds.update(
                    (step, exact) for step, time_ in self.picture_seconds.items() if time_ == target
                )
                self.stats.steps_approximated -= int(abs(exact - target) > 1e-6)
                (picture,) = [
                    picture
                    for _, picture in self._decode_targets(av, container, video, timeline, [exact])
                ]
                yield target, picture
                continue
            keyframe = timeline.keyframe_before(target)
            if frames is None or position >= target or keyframe > position:
                container.seek(int(round(keyframe / video.time_base)), stream=video, backward=True)
                video.codec_context.flush_buffers()  # frames of before the seek
                frames, position = decoded_frames(), None
            picture = None
            for frame in frames:  # left unfinished: the next target goes on from here
                self.stats.frames_decoded += 1
                position = frame.time
                if frame.time is not None and abs(frame.time - target) < 1e-6:
                    picture = frame.to_ndarray(format="rgb24")
                    break
            if picture is None:
                raise VideoError(f"{self.path}: no frame at {target:.3f} s after seeking")
            yield target, picture

    def _keyframe_alone(self, container, video, target):
        """The RGB picture of the keyframe at `target` seconds, decoded by itself:
        the packet there and a drain of the decoder (None: no keyframe there)."""
        container.seek(int(round(target / video.time_base)), stream=video, backward=True)
        codec = video.codec_context
        codec.flush_buffers()
        codec.skip_frame = "DEFAULT"
        for packet in container.demux(video):
            if packet.pts is None or packet.size == 0:
                continue
            if not packet.is_keyframe or abs(_packet_time(packet) - target) > 1e-6:
                return None
            frames = [*packet.decode(), *codec.decode(None)]
            codec.flush_buffers()
            self.stats.frames_decoded += len(frames)
            for frame in frames:
                # A drained frame carries no time base: the stream's is its own.
                if frame.pts is not None and abs(frame.pts * video.time_base - target) < 1e-6:
                    return frame.to_ndarray(format="rgb24")
            return None
        return None

    def _audio(self, av, container):
        if not container.streams.audio:
            self.warnings.append(f"{self.path}: no audio stream; its audio features are silence's")
            return DecodedAudio(None)
        spans = _AudioSpans(av, container, container.streams.audio[0])
        end_time = self.max_frames / self.frames_per_second + 1.0
        return DecodedAudio(spans.waveform(self._audio_spans(), end_time))

    def _audio_spans(self):
        """The [first, end) 16 kHz samples of the wanted steps' examples, merged
        where decoding on is cheaper than seeking again."""
        starts = log_mel.example_starts(self.wanted, self.frames_per_second) * log_mel.HOP_SAMPLES
        length = log_mel.samples_needed([0], self.frames_per_second)
        join = int((_AUDIO_PREROLL_SECONDS + _AUDIO_MARGIN_SECONDS) * SAMPLE_RATE)
        spans = []
        for first in starts.tolist():
            if spans and first <= spans[-1][1] + join:
                spans[-1][1] = first + length
            else:
                spans.append([first, first + length])
        return spans


def _resampled(av, frames, end_time=None):
    """The 16 kHz mono waveform of decoded audio `frames` (up to the frame that
    passes `end_time` seconds), or None."""
    resampler = av.AudioResampler(format="fltp", rate=SAMPLE_RATE)
    chunks = []
    for frame in frames:
        chunks.extend(_mono(part) for part in resampler.resample(frame))
        if end_time is not None and (frame.time or 0) > end_time:
            break
    chunks.extend(_mono(part) for part in resampler.resample(None))
    return np.concatenate(chunks).astype(np.float32) if chunks else None


# Decoded before an audio span and dropped: the codecs' dependence on the packets
# before (AAC's and Vorbis' overlap, MP3's bit reservoir, Opus' pre-roll) and the
# resampler's filter settle within it.
_AUDIO_PREROLL_SECONDS = 0.25
# Resampled on either side of a span and dropped: the filter's start and flush.
_AUDIO_MARGIN_SECONDS = 0.05


class _AudioSpans:
    """The 16 kHz mono waveform of some spans of a track, equal to the same
    samples of the whole track's decode. Each span is decoded after a pre-roll
    that is dropped, and resampled from a whole period of the two rates after
    the track's first sample, so the resampler's phase is the whole decode's.
    Where the timestamps do not place the samples exactly (rounded, or with
    gaps), the whole track is decoded instead."""

    def __init__(self, av, container, stream):
        self.av, self.container, self.stream = av, container, stream
        self.rate = stream.codec_context.sample_rate
        common = math.gcd(self.rate, SAMPLE_RATE) if self.rate else 1
        self.period_in, self.period_out = self.rate // common, SAMPLE_RATE // common
        self.origin = None  # the track's first sample, on the stream's clock

    def waveform(self, spans, end_time):
        """The waveform up to the last span's end, zeros outside the spans (None:
        no spans, or no audio)."""
        if not spans:
            return None
        from_start = self._frames_from(0)  # the new decoder, as the whole decode starts
        head = list(itertools.islice(from_start, 2))
        if not self._placed(head):
            return _resampled(self.av, itertools.chain(head, from_start), end_time)
        self.origin = self._position(head[0])
        from_start = itertools.chain(head, from_start)
        waveform = np.zeros([spans[-1][1]], np.float32)
        kept = 0
        for first, end in spans:
            try:
                base, samples = self._span(first, end, from_start)
            except _SpanNotPlacedError:
                whole = _resampled(self.av, self._frames_from(0, flush=True), end_time)
                return None if whole is None else whole[: spans[-1][1]]
            piece = samples[first - base : end - base]
            waveform[first : first + len(piece)] = piece
            kept = first + len(piece)
        return waveform[:kept]

    def _frames_from(self, sample, flush=False):
        """Decoded frames from the packet before input sample `sample` on."""
        if sample <= 0:  # as the whole decode starts (a seek in the stream's own time
            self.container.seek(0)  # base alters the first frames of some tracks)
        else:
            at = int(sample / self.rate / self.stream.time_base)
            self.container.seek(at, stream=self.stream, backward=True)
        if flush:
            self.stream.codec_context.flush_buffers()
        for packet in self.container.demux(self.stream):
            yield from packet.decode()

    def _position(self, frame):
        """The frame's first sample on the stream's clock (None: not a whole sample)."""
        if frame.pts is None or frame.time_base is None or frame.sample_rate != self.rate:
            return None
        position = frame.pts * frame.time_base * self.rate
        return int(position) if position.denominator == 1 else None

    def _placed(self, head):
        """Whether the track's first frames are placed exactly by their timestamps
        and join (WebM's milliseconds, for one, round Opus' first frame, shortened
        by its pre-skip)."""
        if not self.rate or not head or None in (positions := [self._position(f) for f in head]):
            return False
        return len(head) == 1 or positions[0] + head[0].samples == positions[1]

    def _span(self, first, end, from_start):
        """(the output index of its first sample, the samples) of a stretch that
        holds [first, end); `from_start`: the frames from the track's start, while
        no other span has been decoded."""
        margin = int(_AUDIO_MARGIN_SECONDS * SAMPLE_RATE)
        periods = max(0, (first - margin) // self.period_out)
        start = self.origin + periods * self.period_in  # where the resampler's phase is 0
        stop = self.origin + -(-(end + margin) * self.rate // SAMPLE_RATE)
        if periods:
            preroll = int(_AUDIO_PREROLL_SECONDS * self.rate)
            frames, keep_from = self._frames_from(start - preroll, flush=True), start - preroll // 2
        else:  # the first span, near the start: the frames from the start
            frames, keep_from = from_start, self.origin
        arrays, position, template = [], None, None
        for frame in frames:
            at = self._position(frame)
            if at is None or (position is None and at > keep_from):
                raise _SpanNotPlacedError()  # no place, or the seek landed past the pre-roll
            if position is not None and at != position:
                raise _SpanNotPlacedError()  # a gap or an overlap in the timestamps
            position = at + frame.samples
            if at < keep_from:
                continue  # pre-roll: the codec settles
            template = template or frame
            arrays.append((at, frame.to_ndarray()))
            if position >= stop:
                break
        if not arrays:  # the track ends before the span
            return periods * self.period_out, np.zeros([0], np.float32)
        if arrays[0][0] > start:
            raise _SpanNotPlacedError()
        channels = 1 if template.format.is_planar else len(template.layout.channels)
        data = np.concatenate([array for _, array in arrays], axis=1)
        data = np.ascontiguousarray(data[:, (start - arrays[0][0]) * channels :])
        joined = self.av.AudioFrame.from_ndarray(
            data, format=template.format.name, layout=template.layout.name
        )
        joined.sample_rate = self.rate
        samples = _resampled(self.av, [joined])
        return periods * self.period_out, np.zeros([0], np.float32) if samples is None else samples


class _SpanNotPlacedError(Exception):
    """A span's samples are not placed exactly by the stream's timestamps."""
