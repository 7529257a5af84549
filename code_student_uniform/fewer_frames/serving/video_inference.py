"""Classifying video files with a trained run: only the frames its model sees.

A student decodes and embeds only the time steps its frame rule picks for the
video (the video's step count is read from its packets, without decoding), the
teacher every step. The features go to a temporary record file read by the
same inference as extracted records: the steps a student does not see hold
zeros there, and it never reads them, so its predictions equal those on the
records of extract_features.py.
"""

import contextlib
import dataclasses
import tempfile
import threading

import tensorflow as tf
from absl import logging

from fewer_frames.features import extraction, output_shards
from fewer_frames.serving import batch_inference


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
def records_of_videos(config, entries, settings, dead_letter=None):
    """Yields (a temporary record file of `entries`' features for the scored model
    of `config`, the ExtractionReport); removed afterwards. The videos that fail
    are listed in the CSV `dead_letter` (None: only in the report)."""
    with tempfile.TemporaryDirectory() as folder:
        path = f"{folder}/videos.tfrecord"
        report = extraction.extract(
            entries,
            path,
            video_settings(config, settings),
            wanted_steps=student_steps(config),
            dead_letter=dead_letter,
        )
        logging.info("Features of %s", report.summary())
        yield path, report


def classify_stream(config, entries, settings, prediction, session_settings):
    """Classifies `entries`, an iterator (standard input's lines), as each
    arrives: features of the frames the model sees, then its top-k, written to
    prediction["output_file"] (and the named JSON lines) and flushed after each
    video. The networks and the run load once. `prediction` as
    pipelines/beam_videos.run_inference takes it. Returns (the
    ExtractionReport, the entries seen)."""
    settings = video_settings(config, settings)
    extractor = extraction.FeatureExtractor(settings)
    wanted = student_steps(config)
    predictor = batch_inference.RecordPredictor(
        config,
        prediction["train_dir"],
        prediction["top_k"],
        session_settings,
        prediction["checkpoint_path"],
        prediction["precision"],
    )
    report = extraction.ExtractionReport()
    seen = [0]

    def batches():
        for seen[0], entry in enumerate(entries, start=1):
            for _, record, _ in extraction.one_video_records(extractor, entry, report, wanted):
                if record is not None:
                    report.written += 1
                    yield predictor.predict([record])

    try:
        batch_inference.write_predictions(
            prediction["output_file"],
            batches(),
            prediction["names"],
            prediction["named_output_file"],
            streaming=True,
        )
    finally:
        extractor.close()
    report.dead_letter = (
        output_shards.write_dead_letter(prediction["dead_letter"], report.failed) or ""
    )
    return report, seen[0]
