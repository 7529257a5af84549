"""Ensembles of prediction CSVs (ensemble.py): scores combined per video and class
(max, mean, weighted mean), rows streamed, files that disagree on their videos
refused."""

import itertools

import numpy as np
import tensorflow as tf
from absl import logging

from fewer_frames.config import settings
from fewer_frames.evaluation import eval_util
from fewer_frames.inputs import prediction_files
from fewer_frames.system import filesystem
from fewer_frames.system.errors import UserError

# Rows scored together by the metrics.
_CHUNK = 256


def combine(score_maps, method, weights):
    """{class: score} of one video from each file's {class: score}."""
    classes = set().union(*score_maps)
    if method == "max":
        return {c: max(scores.get(c, 0.0) for scores in score_maps) for c in classes}
    total = sum(weights)
    return {
        c: sum(w * scores.get(c, 0.0) for w, scores in zip(weights, score_maps, strict=True))
        / total
        for c in classes
    }


def top_classes(scores, top_k):
    """The `top_k` (class, score) pairs by score (ties: the lower class first)."""
    return sorted(scores.items(), key=lambda pair: (-pair[1], pair[0]))[:top_k]


def aligned_rows(paths):
    """Yields, per video, (video id, [each file's {class: score}]); files that
    disagree on their videos (another video at a row, or fewer rows) are an error
    naming the file and the video."""
    missing = object()
    streams = [prediction_files.read_rows(path) for path in paths]
    for rows in itertools.zip_longest(*streams, fillvalue=missing):
        ended = [path for path, row in zip(paths, rows, strict=True) if row is missing]
        if ended:
            longer, row = next(
                (path, row) for path, row in zip(paths, rows, strict=True) if row is not missing
            )
            raise UserError(
                f"{ended[0]} ends before {longer}, which goes on with video {row[1]} (line "
                f"{row[0]}): the files must hold the predictions of the same videos"
            )
        first = rows[0]
        for path, row in zip(paths[1:], rows[1:], strict=True):
            if row[1] != first[1]:
                raise UserError(
                    f"{path} line {row[0]} is video {row[1]}, but {paths[0]} has video "
                    f"{first[1]} there: the files must hold the same videos in the same order"
                )
        yield first[1], [row[2] for row in rows]


class _Scored:
    """The metrics of one prediction source over the labelled videos."""

    def __init__(self, num_classes, top_k):
        self.metrics = eval_util.EvaluationMetrics(num_classes, top_k)
        self.rows = []

    def add(self, scores, labels, num_classes, flush=False):
        if scores is not None:
            self.rows.append((scores, labels))
        if self.rows and (flush or len(self.rows) >= _CHUNK):
            predictions = np.zeros((len(self.rows), num_classes))
            actuals = np.zeros((len(self.rows), num_classes))
            for row, (pairs, video_labels) in enumerate(self.rows):
                predictions[row, list(pairs)] = list(pairs.values())
                actuals[row, video_labels] = 1
            self.metrics.accumulate(predictions, actuals, 0.0)
            self.rows = []

    def summary(self):
        result = self.metrics.get()
        return {
            "num_examples": result["num_examples"],
            "gap": result["gap"],
            "map": result["map"],
            "hit_at_one": result["avg_hit_at_one"],
            "perr": result["avg_perr"],
        }


def _checked_weights(method, weights, count):
    if not weights:
        return [1.0] * count
    if method != "mean":
        raise UserError("--weights: only --method=mean takes weights")
    try:
        values = [float(weight) for weight in weights]
    except ValueError as error:
        raise UserError(f"--weights: {error}") from error
    if len(values) != count or min(values) < 0 or sum(values) <= 0:
        raise UserError(
            f"--weights: give {count} non-negative weights (one per --input_files), not all 0; "
            f"got {','.join(weights)}"
        )
    return values


def run_ensemble(paths, output_file, method="mean", weights=(), top_k=20, labels=None, classes=0):
    """Writes the ensemble of the CSVs `paths` to `output_file`; with `labels`
    ({video id: labels}) and the class count, returns the metrics of each input
    and of the ensemble ({"inputs": [{"file": path, metric: value, ...}],
    "ensemble": {metric: value, ...}}; else {})."""
    if not paths:
        raise UserError("--input_files: give the prediction files to combine")
    weights = _checked_weights(method, list(weights), len(paths))
    top_k = settings.checked_top_k(top_k)
    scored = [_Scored(classes, top_k) for _ in range(len(paths) + 1)] if labels else []
    videos = 0
    with (
        filesystem.atomic_output(output_file) as temporary,
        tf.io.gfile.GFile(temporary, "w") as stream,
    ):
        stream.write(prediction_files.HEADER + "\n")
        for video_id, score_maps in aligned_rows(paths):
            combined = dict(top_classes(combine(score_maps, method, weights), top_k))
            stream.write(prediction_files.format_row(video_id, list(combined), combined.values()))
            videos += 1
            if labels is None:
                continue
            if video_id not in labels:
                raise UserError(f"video {video_id} of {paths[0]} is not in --eval_data_pattern")
            for source, name, scores in zip(
                scored, list(paths) + ["the ensemble"], score_maps + [combined], strict=True
            ):
                if max(scores, default=0) >= classes:
                    raise UserError(f"{name}: video {video_id} has a class >= {classes}")
                source.add(scores, labels[video_id], classes)
    logging.info(
        "Wrote the %s of %d files over %d videos to %s", method, len(paths), videos, output_file
    )
    if not scored:
        return {}
    for source in scored:
        source.add(None, None, classes, flush=True)
    return {
        "inputs": [
            {"file": path, **source.summary()}
            for path, source in zip(paths, scored[:-1], strict=True)
        ],
        "ensemble": scored[-1].summary(),
    }
