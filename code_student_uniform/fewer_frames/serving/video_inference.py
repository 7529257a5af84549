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

from fewer_frames.features import extraction


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
