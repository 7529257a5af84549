"""Video-level prediction files: the Kaggle CSV (`VideoId,LabelConfidencePairs`)
that inference writes and the ensemble reads, and the readable JSON-lines file
with class names beside it."""

import json

import tensorflow as tf

from fewer_frames.system.errors import UserError

HEADER = "VideoId,LabelConfidencePairs"


def format_row(video_id, indexes, scores):
    """One CSV row: `<id>,<label> <score> <label> <score> ...` (scores to 6 places)."""
    video_id = video_id.decode() if isinstance(video_id, bytes) else video_id
    pairs = " ".join(f"{index} {score:.6f}" for index, score in zip(indexes, scores, strict=True))
    return f"{video_id},{pairs}\n"


def format_named_row(video_id, indexes, scores, names):
    """One JSON line: the video and its top classes with their names and scores."""
    video_id = video_id.decode() if isinstance(video_id, bytes) else video_id
    classes = [
        {"class": int(index), "name": names.get(int(index), ""), "score": round(float(score), 6)}
        for index, score in zip(indexes, scores, strict=True)
    ]
    return json.dumps({"video_id": video_id, "classes": classes}) + "\n"


def read_rows(path):
    """Yields (line number, video id, {class: score}) of a predictions CSV, streaming;
    a missing header or a malformed row is a UserError naming the file and line."""
    try:
        stream = tf.io.gfile.GFile(path)
        header = stream.readline().rstrip("\n")
    except tf.errors.OpError as error:
        raise UserError(f"cannot read {path}: {error.message}") from error
    if header != HEADER:
        raise UserError(f"{path} does not start with the header {HEADER!r} (found {header!r})")
    with stream:
        for number, line in enumerate(stream, start=2):
            yield number, *_parsed_row(line.rstrip("\n"), path, number)


def _parsed_row(line, path, number):
    video_id, comma, pairs = line.partition(",")
    values = pairs.split()
    if not comma or not video_id or len(values) % 2:
        raise UserError(f"{path} line {number}: not `<video id>,<label> <score> ...`: {line!r}")
    try:
        scores = {
            int(label): float(score) for label, score in zip(values[::2], values[1::2], strict=True)
        }
    except ValueError as error:
        raise UserError(f"{path} line {number}: {error}") from error
    return video_id, scores
