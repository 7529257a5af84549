"""Classifying video files with a trained run: only the frames its model sees.

A student decodes and embeds only the time steps its frame rule picks for the
video (the video's step count is read from its packets, without decoding), the
teacher every step. The features go to a temporary record file read by the
same inference as extracted records: the steps a student does not see hold
zeros there, and it never reads them, so its predictions equal those on the
records of extract_features.py.
"""

import concurrent.futures
import contextlib
import dataclasses
import re
import string
import tempfile
import threading
import time

import tensorflow as tf
from absl import logging

from fewer_frames.features import extraction, output_shards
from fewer_frames.serving import batch_inference
from fewer_frames.system import runtime


@dataclasses.dataclass
class StartupTimes:
    """Where a run on video files spent its time: moments in seconds since the
    process started, and how long each loading took beside the first video."""

    imports: float = dataclasses.field(default_factory=lambda: runtime.main_started)
    networks_seconds: float = 0.0  # the feature networks' loading
    model_seconds: float = 0.0  # building the run's model and restoring its checkpoint
    first_prediction: float = 0.0
    done: float = 0.0

    _LINE = (
        "Since the process started: imports done at {imports:.2f} s, first prediction at "
        "{first_prediction:.2f} s, done at {done:.2f} s; beside the first video, the feature "
        "networks loaded in {networks_seconds:.2f} s and the model in {model_seconds:.2f} s"
    )

    def summary(self):
        return self._LINE.format(**dataclasses.asdict(self))

    @classmethod
    def from_log(cls, text):
        """The StartupTimes of the summary() line in a log (None: no such line)."""
        pattern = "".join(
            re.escape(literal) + (f"(?P<{name}>[0-9.]+)" if name else "")
            for literal, name, _, _ in string.Formatter().parse(cls._LINE)
        )
        match = re.search(pattern, text)
        if match is None:
            return None
        return cls(**{name: float(value) for name, value in match.groupdict().items()})


def student_steps(config):
    """(video path, step count) -> the steps the scored model of `config` reads:
    its frame rule's, for a student alone on frame features (None: every step)."""
    if config.models != ["student"] or not config.frame_features:
        return None
    selection = config.selection()
    graph = tf.Graph()
    with graph.as_default():
        counts = tf.compat.v1.placeholder(tf.int32, [1])
        ids = tf.compat.v1.placeholder(tf.string, [1])
        indices, received = selection.indices(counts, is_training=False, video_ids=ids)
    session = tf.compat.v1.Session(graph=graph)
    lock = threading.Lock()

    def wanted(path, count):
        with lock:
            chosen, real = session.run([indices, received], {counts: [count], ids: [path]})
        return sorted(set(chosen[0, : real[0]].tolist()))

    return wanted


def video_settings(config, settings):
    """The extraction settings that make the features the model of `config` reads."""
    return dataclasses.replace(
        settings, max_frames=config.max_num_frames, dataset_version=config.dataset_version
    )


@contextlib.contextmanager
def records_of_videos(config, entries, settings, dead_letter=None, overlap_loading=True):
    """Yields (a temporary record file of `entries`' features for the scored model
    of `config`, the ExtractionReport); removed afterwards. The videos that fail
    are listed in the CSV `dead_letter` (None: only in the report).
    `overlap_loading`: as extraction.extract takes it."""
    with tempfile.TemporaryDirectory() as folder:
        path = f"{folder}/videos.tfrecord"
        report = extraction.extract(
            entries,
            path,
            video_settings(config, settings),
            wanted_steps=student_steps(config),
            dead_letter=dead_letter,
            overlap_loading=overlap_loading,
        )
        logging.info("Features of %s", report.summary())
        yield path, report


def classify_videos(config, entries, settings, prediction, session_settings, streaming=False):
    """Classifies `entries`: features of the frames the model sees, then its top-k,
    written to prediction["output_file"] (and the named JSON lines). The run's
    model and the feature networks load in threads of their own while the first
    video decodes. A list is decoded ahead, one video beside the networks of the
    one before; with `streaming`, `entries` is an iterator (standard input's
    lines), each video classified as it arrives and the output flushed after it.
    `prediction` as pipelines/beam_videos.run_inference takes it. Returns (the
    ExtractionReport, the entries seen, the StartupTimes)."""
    started = time.perf_counter()
    times = StartupTimes()
    settings = video_settings(config, settings)
    extractor = extraction.FeatureExtractor(settings)

    def load_model():
        # After the networks, which the first video needs first.
        extractor.loaded()
        return _timed(
            batch_inference.RecordPredictor,
            config,
            prediction["train_dir"],
            prediction["top_k"],
            session_settings,
            prediction["checkpoint_path"],
            prediction["precision"],
        )

    loading = concurrent.futures.ThreadPoolExecutor(1, "load-model")
    predictor = loading.submit(load_model)
    loading.shutdown(wait=False)
    wanted = student_steps(config)
    report = extraction.ExtractionReport()
    seen = [0]

    def counted(entries):
        for seen[0], entry in enumerate(entries, start=1):
            yield entry

    if streaming:
        results = (
            result
            for entry in counted(entries)
            for result in extraction.one_video_records(extractor, entry, report, wanted)
        )
    else:
        progress = extraction.Progress(len(entries))
        results = extraction.logged(
            extraction.video_records(extractor, counted(entries), report, wanted),
            report,
            progress,
            keep_failures=True,
        )

    def batches():
        for _, record, _ in results:
            if record is not None:
                report.written += 1
                model, times.model_seconds = predictor.result()
                yield model.predict([record])
                if not times.first_prediction:
                    times.first_prediction = runtime.process_seconds()

    try:
        batch_inference.write_predictions(
            prediction["output_file"],
            batches(),
            prediction["names"],
            prediction["named_output_file"],
            streaming=streaming,
        )
        times.networks_seconds = extractor.loaded()
        _, times.model_seconds = predictor.result()
    finally:
        extractor.close()
        if predictor.exception() is None:
            predictor.result()[0].session.close()
    report.dead_letter = (
        output_shards.write_dead_letter(prediction["dead_letter"], report.failed) or ""
    )
    report.wall_seconds = time.perf_counter() - started
    logging.info("Features of %s", report.summary())
    times.done = runtime.process_seconds()
    logging.info("%s", times.summary())
    return report, seen[0], times


def _timed(make, *args):
    """(make(*args), the seconds it took)."""
    started = time.perf_counter()
    return make(*args), time.perf_counter() - started
