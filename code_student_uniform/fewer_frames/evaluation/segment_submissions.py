"""A Segments submission (`Class,Segments`) read and scored against rated 2019
records: MAP@K (segment_metrics.py)."""

import tensorflow as tf

from fewer_frames.evaluation import segment_metrics
from fewer_frames.inputs import video_labels
from fewer_frames.system.errors import UserError


def read_submission(path):
    """{class: [segment id, ...] in the file's order} of a submission."""
    lists = {}
    try:
        with tf.io.gfile.GFile(path) as stream:
            header = stream.readline().rstrip("\n")
            if header != segment_metrics.SUBMISSION_HEADER:
                raise UserError(
                    f"{path} does not start with the header "
                    f"{segment_metrics.SUBMISSION_HEADER!r} (found {header!r})"
                )
            for number, line in enumerate(stream, start=2):
                name, comma, segments = line.rstrip("\n").partition(",")
                if not comma or not name.isdigit():
                    raise UserError(f"{path} line {number}: not `<class>,<segments>`: {line!r}")
                lists[int(name)] = segments.split()
    except tf.errors.OpError as error:
        raise UserError(f"cannot read {path}: {error.message}") from error
    return lists


def score_submission(path, data_pattern, id_feature, classes=None, k=segment_metrics.DEFAULT_K):
    """The MAP@K of the submission at `path` against the ratings in `data_pattern`,
    over `classes` (None: every class rated) with a positive rating."""
    ratings = video_labels.segment_ratings(data_pattern, id_feature)
    submitted = read_submission(path)
    scored = sorted(ratings) if classes is None else sorted(set(classes) & set(ratings))
    lists = {c: submitted.get(c, []) for c in scored}
    mean, aps = segment_metrics.mean_average_precision_at_k(lists, ratings, k)
    return {"segment_map": mean, "segment_top_k": k, "classes_scored": len(aps)}
