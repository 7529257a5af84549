"""Video files to YouTube-8M frame-level records, as the releases made them.

Per video: the RGB frame of each time step through Inception-v3 (in batches), its
PCA and rounding to bytes; the audio of each step through log-mel, VGGish, its
PCA and truncation to bytes; one SequenceExample with context `id` (the path as
the list writes it), `labels`, `mean_rgb`, `mean_audio` and feature lists `rgb`
and `audio`. A thread decodes ahead while the networks run, and the audio of
one video runs beside the RGB of the next (`video_records`, which the Beam
pipeline runs too, one video at a time). A video that cannot be used, or whose
decoding makes no progress for --video_timeout_seconds, is named, skipped and
listed in the dead-letter CSV; the output's shards appear whole, and a re-run of
the same command skips those already written (output_shards.py).
"""

import collections
import concurrent.futures
import contextlib
import dataclasses
import itertools
import math
import os
import queue
import threading
import time

import numpy as np
import tensorflow as tf
from absl import logging

from fewer_frames.features import (
    inception,
    log_mel,
    model_files,
    output_shards,
    release_pca,
    vggish,
)
from fewer_frames.features.video_files import SparseVideoReader, VideoError, VideoReader
from fewer_frames.inputs import yt8m_format
from fewer_frames.system.errors import UserError


@dataclasses.dataclass
class ExtractionReport:
    """What an extraction did: videos written and failed, and where the time went
    (each stage's own seconds; they overlap, so their sum exceeds `wall_seconds`)."""

    written: int = 0
    failed: list = dataclasses.field(default_factory=list)  # (entry, error)
    skipped: int = 0  # videos in the shards of an earlier run of the same command
    video_seconds: float = 0.0
    frames_decoded: int = 0
    frames_embedded: int = 0
    steps_approximated: int = 0  # given a keyframe near their time (--frame_alignment)
    decode_seconds: float = 0.0
    rgb_seconds: float = 0.0
    audio_seconds: float = 0.0
    write_seconds: float = 0.0
    wall_seconds: float = 0.0
    setup_seconds: float = 0.0  # loading the networks, within wall_seconds (beside decoding)
    files: list = dataclasses.field(default_factory=list)
    dead_letter: str = ""  # the CSV of the failed videos, when any failed

    def summary(self):
        return (
            f"{self.written} videos ({self.video_seconds:.0f} s) in {self.wall_seconds:.1f} s: "
            f"{self.frames_decoded} frames decoded, {self.frames_embedded} embedded"
            f"{self._approximated()}; decoding "
            f"{self.decode_seconds:.1f} s, RGB network {self.rgb_seconds:.1f} s, audio "
            f"{self.audio_seconds:.1f} s, writing {self.write_seconds:.1f} s"
        )

    def _approximated(self):
        if not self.steps_approximated:
            return ""
        return f" ({self.steps_approximated} of them a keyframe near their time)"

    def failure(self, total):
        """The UserError of the videos that failed (None: none did)."""
        return failure(len(self.failed), total, self.dead_letter)


def failure(failed, total, dead_letter):
    """The UserError of `failed` videos of `total` listed in `dead_letter` (None: none failed)."""
    if not failed:
        return None
    return UserError(
        f"{failed} of {total} videos failed (each named above, listed in {dead_letter})"
    )


class _Network:
    """One network of --model_dir in its own graph and session."""

    def __init__(self, config, build):
        self.graph = tf.Graph()
        with self.graph.as_default():
            self.inputs, self.outputs, restore = build()
            self.session = tf.compat.v1.Session(graph=self.graph, config=config)
            restore(self.session)
        self.graph.finalize()

    def run(self, *values):
        return self.session.run(self.outputs, dict(zip(self.inputs, values, strict=True)))


class FeatureExtractor:
    """The networks and PCAs of --model_dir. They load in a thread from
    construction on, Inception-v3 first (about 1.3 s), then VGGish (1.9 s), so
    that the first video decodes meanwhile and its frames go through Inception-v3
    while VGGish loads; rgb() and audio() wait for theirs, and loaded() for both."""

    def __init__(self, settings):
        self.settings = settings
        model_dir = os.path.expanduser(settings.model_dir)
        model_files.ensure_model_files(
            model_dir,
            model_files.RGB_FILES + model_files.AUDIO_FILES,
            allow_download=settings.download_models,
            mirror=settings.model_download_mirror,
        )
        threads = settings.feature_threads
        config = tf.compat.v1.ConfigProto(
            intra_op_parallelism_threads=threads, inter_op_parallelism_threads=threads
        )
        config.graph_options.rewrite_options.disable_meta_optimizer = not settings.grappler
        started = time.perf_counter()

        def load(build):
            network = _Network(config, build)
            return network, time.perf_counter() - started

        # One thread: with Python's lock held by both, two would make Inception-v3
        # wait for VGGish.
        loading = concurrent.futures.ThreadPoolExecutor(1, "load-networks")
        self._rgb = loading.submit(load, lambda: self._rgb_network(model_dir))
        self._audio = loading.submit(load, lambda: self._audio_network(model_dir))
        loading.shutdown(wait=False)

    @staticmethod
    def _rgb_network(model_dir):
        graph_def = inception.load_graph_def(model_dir)
        frames = tf.compat.v1.placeholder(tf.uint8, [None, None, None, 3], "frames")
        pca = release_pca.load_rgb_pca(model_dir)
        rgb = release_pca.rgb_features(inception.embeddings(graph_def, frames), pca)
        return [frames], (rgb, release_pca.quantize(rgb, rounded=True)), lambda session: None

    @staticmethod
    def _audio_network(model_dir):
        waveform = tf.compat.v1.placeholder(tf.float32, [None], "waveform")
        starts = tf.compat.v1.placeholder(tf.int64, [None], "example_starts")
        embedding, restore = vggish.embeddings(
            log_mel.examples(waveform, starts), vggish.checkpoint_path(model_dir)
        )
        audio = release_pca.audio_features(embedding, release_pca.load_audio_pca(model_dir))
        return [waveform, starts], (audio, release_pca.quantize(audio, rounded=False)), restore

    def loaded(self):
        """Waits for both networks; returns the seconds their loading took (its
        error, if one failed)."""
        return max(self._rgb.result()[1], self._audio.result()[1])

    def rgb(self, frames):
        """(float features [n, 1024], uint8 codes [n, 1024]) of RGB frames [n, h, w, 3]."""
        return self._rgb.result()[0].run(frames)

    def audio(self, waveform, steps):
        """(float features, uint8 codes), [len(steps), 128] each, of the time steps
        `steps` of a 16 kHz mono waveform (None: silence), padded with silence."""
        if not len(steps):  # a student that sees none of a short video's frames
            empty = np.zeros([0, release_pca.AUDIO_SIZE])
            return empty.astype(np.float32), empty.astype(np.uint8)
        rate = self.settings.frames_per_second
        needed = log_mel.samples_needed(steps, rate)
        if waveform is None:
            waveform = np.zeros([0], np.float32)
        waveform = np.pad(waveform[:needed], (0, max(0, needed - len(waveform))))
        return self._audio.result()[0].run(waveform, log_mel.example_starts(steps, rate))

    def close(self):
        for network in (self._rgb, self._audio):
            if network.exception() is None:
                network.result()[0].session.close()


# The context feature of keyframe-aligned records (--frame_alignment=keyframe):
# for each time step, the time in seconds of the picture its RGB features come
# from (the step's own time, or its keyframe's), -1 for a step not computed.
PICTURE_SECONDS = "step_picture_seconds"


def sequence_example(video_id, labels, rgb, audio, id_feature="id", picture_seconds=None):
    """The frame-level record: float features and codes of RGB and audio, [n, size];
    `picture_seconds`: the PICTURE_SECONDS feature's values, if any."""
    example = tf.train.SequenceExample()
    context = example.context.feature
    context[id_feature].bytes_list.value.append(video_id.encode())
    context["labels"].int64_list.value.extend(labels)
    context["mean_rgb"].float_list.value.extend(rgb[0].mean(axis=0).tolist())
    context["mean_audio"].float_list.value.extend(audio[0].mean(axis=0).tolist())
    if picture_seconds is not None:
        context[PICTURE_SECONDS].float_list.value.extend(picture_seconds)
    for name, codes in (("rgb", rgb[1]), ("audio", audio[1])):
        feature_list = example.feature_lists.feature_list[name]
        for row in codes:
            feature_list.feature.add().bytes_list.value.append(row.tobytes())
    # Map entries (the context) in key order: the same bytes in every process.
    return example.SerializeToString(deterministic=True)


@dataclasses.dataclass
class _Video:
    entry: object
    rgb_parts: list = dataclasses.field(default_factory=list)  # (steps, features, codes)
    audio: object = None  # a future of (features, codes) of `steps`
    steps: int = 0  # the video's time steps
    wanted: tuple = ()  # the steps computed (all, but for a sparse reader)
    picture_seconds: dict = None  # step: its picture's time (keyframe alignment only)
    error: str = ""

    def picture_times(self):
        """The PICTURE_SECONDS values (None: not keyframe-aligned)."""
        if not self.picture_seconds:
            return None
        return [float(self.picture_seconds.get(step, -1.0)) for step in range(self.steps)]

    def arrays(self):
        """(RGB, audio), each (float features, uint8 codes) [steps, size]: the
        steps not computed are zeros (a sparse reader's, which no model reads)."""
        rgb = [np.zeros([self.steps, release_pca.RGB_SIZE], np.float32)]
        rgb.append(np.zeros([self.steps, release_pca.RGB_SIZE], np.uint8))
        for steps, features, codes in self.rgb_parts:
            rgb[0][steps], rgb[1][steps] = features, codes
        audio = [np.zeros([self.steps, release_pca.AUDIO_SIZE], np.float32)]
        audio.append(np.zeros([self.steps, release_pca.AUDIO_SIZE], np.uint8))
        audio[0][list(self.wanted)], audio[1][list(self.wanted)] = self.audio.result()
        return tuple(rgb), tuple(audio)


class _Decoder(threading.Thread):
    """Decodes the videos in order ahead of the networks, into a bounded queue;
    `current` is the entry being decoded."""

    def __init__(self, entries, settings, wanted_steps):
        super().__init__(daemon=True)
        self.entries, self.settings, self.wanted_steps = entries, settings, wanted_steps
        self.items = queue.Queue(maxsize=4)
        self.stop = threading.Event()
        self.current = None

    def _put(self, item):
        while not self.stop.is_set():
            try:
                self.items.put(item, timeout=0.2)
                return
            except queue.Full:
                continue

    def run(self):
        settings = self.settings
        try:
            for entry in self.entries:
                self.current = entry
                if entry.error:
                    self._put(("failed", entry, entry.error))
                    continue
                reader = make_reader(entry.path, settings, self.wanted_steps)
                try:
                    for batch in reader.batches():
                        self._put(("frames", entry, batch))
                except VideoError as error:
                    self._put(("failed", entry, str(error)))
                    continue
                self._put(("done", entry, reader))
                if self.stop.is_set():
                    return
        except BaseException as error:  # reported by the consumer, with its traceback
            self._put(("crashed", None, error))
        self._put(None)


def make_reader(path, settings, wanted_steps=None):
    """The reader of a video: every step in one pass, or with `wanted_steps`
    ((path, step count) -> the steps to compute, None: all) only those."""
    sizes = (settings.frames_per_second, settings.max_frames, settings.frames_per_batch)
    if wanted_steps is None:
        return VideoReader(path, *sizes)
    return SparseVideoReader(
        path,
        *sizes,
        lambda count: wanted_steps(path, count),
        settings.frame_alignment,
        settings.keyframe_tolerance_seconds,
    )


def _decoded(entries, settings, wanted_steps):
    """Yields the decoder's items for `entries` in order; a video whose decoding
    gives nothing for settings.video_timeout_seconds becomes a failure, and its
    decoder is left behind (a call that never returns cannot be stopped) while a
    new one goes on from the next video."""
    timeout = settings.video_timeout_seconds or None
    remaining = list(entries)
    while remaining:
        decoder = _Decoder(remaining, settings, wanted_steps)
        decoder.start()
        try:
            while True:
                try:
                    item = decoder.items.get(timeout=timeout)
                except queue.Empty:
                    stuck = decoder.current
                    yield (
                        "failed",
                        stuck,
                        f"{stuck.path}: decoding gave nothing for {timeout:g} s "
                        "(--video_timeout_seconds); stopped",
                    )
                    remaining = remaining[remaining.index(stuck) + 1 :]
                    break
                if item is None:
                    return
                yield item
        finally:
            decoder.stop.set()


def video_records(extractor, entries, report, wanted_steps=None):
    """Yields (entry, serialized record or None, error) of `entries` in order,
    adding to `report` what was decoded and how long each stage took. A network
    that cannot load fails it before the first result, a failed video's too."""
    with contextlib.closing(_video_records(extractor, entries, report, wanted_steps)) as results:
        for result in results:
            extractor.loaded()
            yield result


def _video_records(extractor, entries, report, wanted_steps):
    settings = extractor.settings
    id_feature, _ = yt8m_format.dataset_version_info(settings.dataset_version)
    pending = collections.deque()
    current = None
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as audio_pool:

        def timed_audio(waveform, steps):
            started = time.perf_counter()
            result = extractor.audio(waveform, steps)
            report.audio_seconds += time.perf_counter() - started
            return result

        def finished(video):
            if video.error:
                return video.entry, None, video.error
            rgb, audio = video.arrays()
            started = time.perf_counter()
            record = sequence_example(
                video.entry.path,
                video.entry.labels,
                rgb,
                audio,
                id_feature,
                video.picture_times(),
            )
            report.write_seconds += time.perf_counter() - started
            return video.entry, record, ""

        for kind, entry, payload in _decoded(entries, settings, wanted_steps):
            if kind == "crashed":
                raise payload
            if kind == "failed":
                current = None if current is not None and current.entry is entry else current
                pending.append(_Video(entry, error=payload))
            elif kind == "frames":
                if current is None or current.entry is not entry:
                    current = _Video(entry)
                started = time.perf_counter()
                steps, frames = payload
                current.rgb_parts.append((steps, *extractor.rgb(frames)))
                report.rgb_seconds += time.perf_counter() - started
            else:  # done: the audio is decoded too
                reader = payload
                for warning in reader.warnings:
                    logging.warning("%s", warning)
                report.decode_seconds += reader.stats.seconds
                report.frames_decoded += reader.stats.frames_decoded
                report.steps_approximated += reader.stats.steps_approximated
                report.video_seconds += reader.steps / settings.frames_per_second
                report.frames_embedded += len(reader.wanted)
                video = current if current is not None and current.entry is entry else None
                current = None
                video = video or _Video(entry)
                video.steps, video.wanted = reader.steps, tuple(reader.wanted)
                video.picture_seconds = reader.picture_seconds
                video.audio = audio_pool.submit(timed_audio, reader.audio.waveform, video.wanted)
                pending.append(video)
            while pending and (pending[0].error or pending[0].audio.done() or len(pending) > 2):
                yield finished(pending.popleft())
        while pending:
            yield finished(pending.popleft())


class Progress:
    """Logs videos done of the total, video hours per hour of work and the time
    left, at most every `interval` seconds (and when asked to, at the end)."""

    def __init__(self, total, done=0, interval=30.0):
        self.total, self.done, self.interval = total, done, interval
        self.started = self.last = time.monotonic()
        self.first, self.video_seconds = done, 0.0

    def add(self, videos, video_seconds, force=False):
        self.done += videos
        self.video_seconds += video_seconds
        now = time.monotonic()
        if not force and now - self.last < self.interval:
            return
        self.last = now
        elapsed = max(now - self.started, 1e-9)
        rate = (self.done - self.first) / elapsed  # videos a second
        left = (self.total - self.done) / rate if rate > 0 else float("nan")
        logging.info(
            "Progress: %d of %d videos, %.1f video hours per hour, %s left",
            self.done,
            self.total,
            self.video_seconds / elapsed,
            "unknown" if math.isnan(left) else time.strftime("%H:%M:%S", time.gmtime(left)),
        )


def settings_fingerprint(settings, wanted_steps=None):
    """What shapes the records (kept in each shard's receipt)."""
    return {
        "dataset_version": settings.dataset_version,
        "frames_per_second": settings.frames_per_second,
        "max_frames": settings.max_frames,
        "every_step": wanted_steps is None,
    }


def extract(
    entries,
    output_path,
    settings,
    videos_per_shard=0,
    wanted_steps=None,
    dead_letter=None,
    overlap_loading=True,
):
    """Writes the records of `entries` (video_list.VideoEntry) to `output_path`, or
    to shards of `videos_per_shard` videos, skipping the shards that an earlier
    run of the same command wrote; the failed videos go to `dead_letter` (a CSV;
    None: beside the output). Returns an ExtractionReport. With `wanted_steps`
    (make_reader), only those steps are decoded and computed. The first video
    decodes while the networks load; not with `overlap_loading` False (for
    figures per video that leave the loading out)."""
    started = time.perf_counter()
    report = ExtractionReport()
    plan = output_shards.ShardPlan(
        output_path, entries, videos_per_shard, settings_fingerprint(settings, wanted_steps)
    )
    finished = plan.finished()
    for index, failures in finished.items():
        shard = plan.shards[index]
        report.skipped += len(shard.entries) - len(failures)
        report.failed += failures
        report.files.append(shard.path)
    if finished:
        logging.info(
            "Skipping %d of %d shards written by an earlier run (%d videos)",
            len(finished),
            len(plan.shards),
            report.skipped,
        )
    todo = [shard for shard in plan.shards if shard.index not in finished]
    progress = Progress(len(entries), sum(len(plan.shards[i].entries) for i in finished))
    extractor = FeatureExtractor(settings) if todo else None
    if todo and not overlap_loading:
        extractor.loaded()
    todo_entries = [entry for shard in todo for entry in shard.entries]
    results = video_records(extractor, todo_entries, report, wanted_steps) if todo else iter(())
    try:
        for shard in todo:
            shard_results = itertools.islice(results, len(shard.entries))
            written, failures = plan.write_shard(shard, logged(shard_results, report, progress))
            report.written += written
            report.failed += failures
            report.files.append(shard.path)
            logging.info(
                "Wrote %s: %d videos (shard %d of %d)",
                shard.path,
                written,
                shard.index + 1,
                len(plan.shards),
            )
        if todo:
            report.setup_seconds = extractor.loaded()
    finally:
        if todo:
            results.close()
            extractor.close()
    report.files.sort()
    dead_letter = (
        output_shards.dead_letter_path(output_path) if dead_letter is None else dead_letter
    )
    report.dead_letter = output_shards.write_dead_letter(dead_letter, report.failed) or ""
    report.wall_seconds = time.perf_counter() - started
    progress.add(0, 0.0, force=True)
    return report


def extract_stream(entries, output_path, settings, wanted_steps=None, dead_letter=None):
    """Writes the records of `entries`, an iterator (standard input's lines), as
    each arrives, to the one file `output_path`, flushed after each video so that
    a reader follows them; the models load once. Returns (the ExtractionReport,
    the entries seen)."""
    started = time.perf_counter()
    report = ExtractionReport(files=[output_path])
    extractor = FeatureExtractor(settings)
    seen = 0
    try:
        with tf.io.TFRecordWriter(output_path) as writer:
            for entry in entries:
                seen += 1
                for _, record, _ in one_video_records(extractor, entry, report, wanted_steps):
                    if record is not None:
                        writer.write(record)
                        writer.flush()
                        report.written += 1
        report.setup_seconds = extractor.loaded()
    finally:
        extractor.close()
    dead_letter = (
        output_shards.dead_letter_path(output_path) if dead_letter is None else dead_letter
    )
    report.dead_letter = output_shards.write_dead_letter(dead_letter, report.failed) or ""
    report.wall_seconds = time.perf_counter() - started
    return report, seen


def logged(results, report, progress=None, keep_failures=False):
    """`results` of video_records, each failure named in the log (and with
    `keep_failures` kept in `report`), each video added to `progress`."""
    counted = report.video_seconds
    for entry, record, error in results:
        if error:
            logging.error("%s", error)
            if keep_failures:
                report.failed.append((entry, error))
        if progress is not None:
            progress.add(1, report.video_seconds - counted)
            counted = report.video_seconds
        yield entry, record, error


def one_video_records(extractor, entry, report, wanted_steps=None):
    """`video_records` of the one `entry` (standard input's, Beam's), its failure
    named and kept in `report`."""
    results = video_records(extractor, [entry], report, wanted_steps)
    return logged(results, report, keep_failures=True)
