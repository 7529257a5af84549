"""benchmark.py --what=metrics: the evaluation's metrics at the speed and memory of
a whole validation set, with a model that costs nothing.

Batches of scores and labels come from a pool made once (random scores, about
three labels per video as in YouTube-8M), through a tf.data pipeline, into the
evaluation loop's own metric tensors and accumulator (`VideoScores`), on one
core. Measured: videos/s of the loop and of the whole evaluation (the final
ranking included), and, in a second pass under tracemalloc, the memory the
metrics keep per million videos and their peak (the final ranking included).
"""

import time
import tracemalloc

import numpy as np
import tensorflow as tf
from absl import logging

from fewer_frames.config.settings import EvaluationSettings
from fewer_frames.evaluation import evaluation_loop
from fewer_frames.inputs import yt8m_format

POOL_BATCHES = 8
LABELS_PER_VIDEO = 3.0


def _pool(batch_size, num_classes, seed=0):
    rng = np.random.default_rng(seed)
    scores = rng.random((POOL_BATCHES, batch_size, num_classes), dtype=np.float32)
    labels = rng.random(scores.shape, dtype=np.float32) < LABELS_PER_VIDEO / num_classes
    return scores, labels


def _evaluate(session, fetches, video_scores, trace_memory=False):
    """(videos, seconds of the loop, seconds of the final ranking, bytes kept
    after the loop, peak bytes) of one evaluation over the pool's batches; the
    bytes are numpy's and Python's (tracemalloc), when `trace_memory`."""
    if trace_memory:
        tracemalloc.start()
    start = time.time()
    videos = 0
    while True:
        try:
            videos += video_scores.accumulate(session.run(fetches))
        except tf.errors.OutOfRangeError:
            break
    loop_seconds = time.time() - start
    kept = tracemalloc.get_traced_memory()[0] if trace_memory else 0
    start = time.time()
    summary = video_scores.summary()
    ranking_seconds = time.time() - start
    peak = tracemalloc.get_traced_memory()[1] if trace_memory else 0
    tracemalloc.stop()
    return videos, loop_seconds, ranking_seconds, kept, peak, summary


def bench_metrics(options):
    num_classes = yt8m_format.DATASET_VERSIONS["2018"]["num_classes"]
    batch_size = options.batch_size
    batches = -(-options.metrics_videos // batch_size)
    scores, labels = _pool(batch_size, num_classes)
    settings = EvaluationSettings()
    one_core = tf.compat.v1.ConfigProto(
        intra_op_parallelism_threads=1, inter_op_parallelism_threads=1
    )
    with tf.Graph().as_default():
        # Each pass: one batch to warm up, then the measured ones. The pool is fed
        # (as a constant, its 15 million labels would take seconds to build).
        pool = [tf.compat.v1.placeholder(array.dtype, array.shape) for array in (scores, labels)]
        passes = tf.data.Dataset.from_tensor_slices(tuple(pool)).repeat().take(batches + 1)
        iterator = tf.compat.v1.data.make_initializable_iterator(passes)
        predictions, batch_labels = iterator.get_next()
        outputs = {"costless_predictions": predictions, "labels": batch_labels}
        fetches = evaluation_loop.VideoScores(settings, num_classes).fetches(
            outputs, "costless", batch={}
        )
        fetches["loss"] = tf.constant(0.0)
        results = []
        with tf.compat.v1.Session(config=one_core) as session:
            for trace_memory in (False, True):  # timed, then with memory traced
                session.run(iterator.initializer, dict(zip(pool, (scores, labels), strict=True)))
                session.run(fetches)
                video_scores = evaluation_loop.VideoScores(settings, num_classes)
                results.append(_evaluate(session, fetches, video_scores, trace_memory))
    (videos, loop_seconds, ranking_seconds, _, _, summary), (_, _, _, kept, peak, _) = results
    per_million = 1e6 / videos / 2**30
    figures = {
        "metrics_videos": videos,
        "metrics_classes": num_classes,
        "metrics_batch_size": batch_size,
        "metrics_top_k": settings.top_k,
        "metrics_loop_videos_per_second": round(videos / loop_seconds),
        "metrics_ranking_seconds": round(ranking_seconds, 3),
        "metrics_videos_per_second": round(videos / (loop_seconds + ranking_seconds)),
        "metrics_kept_gib_per_million_videos": round(kept * per_million, 4),
        "metrics_peak_gib_per_million_videos": round(peak * per_million, 4),
        "metrics_gap": float(summary["gap"]),
        "metrics_cpu_threads": 1,
    }
    logging.info("metrics: %s", figures)
    return figures
