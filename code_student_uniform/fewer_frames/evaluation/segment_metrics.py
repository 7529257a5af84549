"""The 2019 Segments challenge's metrics and its submission's ranked lists.

A segment is "<video id>:<start frame>". Per class of the whitelist, the
submission ranks the K segments (of all segments predicted) with the highest
scores for that class (`TopSegments`, K per class in memory, whatever the data's
size). MAP@K scores those lists against the human ratings:

  AP@K(c) = sum over the rated entries of c's list (in list order, unrated
            entries ignored) of precision-so-far at each positive, divided by
            min(positives of c, K),

where precision counts rated entries only; MAP@K is the mean over the classes
with at least one positive rating (the others are left out, as the challenge
did). `SegmentMetrics` computes it during an evaluation, and the segment GAP:
the average precision of every rated (segment, class) pair pooled.
"""

import numpy as np
import tensorflow as tf

from fewer_frames.evaluation.average_precision_calculator import AveragePrecisionCalculator
from fewer_frames.system.errors import UserError

SUBMISSION_HEADER = "Class,Segments"
# The challenge's K.
DEFAULT_K = 100_000


def read_class_list(path):
    """The class ids of a whitelist file (one per line, a header line allowed, e.g.
    the 2019 `segment_label_ids.csv`)."""
    try:
        with tf.io.gfile.GFile(path) as stream:
            lines = [line.split(",")[0].strip() for line in stream if line.strip()]
    except tf.errors.OpError as error:
        raise UserError(f"--segment_classes: cannot read {path}: {error.message}") from error
    if lines and not lines[0].isdigit():
        lines = lines[1:]  # the header
    try:
        return sorted({int(line) for line in lines})
    except ValueError as error:
        raise UserError(f"--segment_classes: {path} holds a line that is no class id") from error


class TopSegments:
    """The `k` highest-scored segments of each class of `classes` seen so far.

    Ties go to the segment seen first. Kept as [entries, classes] arrays, pruned
    to `k` rows whenever they pass 2k: memory is about 2k per class.
    """

    def __init__(self, classes, k=DEFAULT_K):
        if k <= 0:
            raise UserError(f"--segment_top_k={k} must be positive")
        self.classes, self.k = np.asarray(classes, np.int64), k
        width = len(self.classes)
        self.scores = np.empty((0, width), np.float32)
        self.order = np.empty((0, width), np.int64)  # arrival: the tie-break
        self.ids = np.empty((0, width), object)
        self.seen = 0

    def add(self, segment_ids, predictions):
        """Adds a batch: ids [S] and predictions [S, num_classes]."""
        count = len(segment_ids)
        if not count:
            return
        width = len(self.classes)
        self.scores = np.concatenate([self.scores, predictions[:, self.classes]])
        arrival = np.arange(self.seen, self.seen + count)
        self.order = np.concatenate([self.order, np.repeat(arrival[:, None], width, axis=1)])
        ids = np.asarray([i.decode() if isinstance(i, bytes) else i for i in segment_ids], object)
        self.ids = np.concatenate([self.ids, np.repeat(ids[:, None], width, axis=1)])
        self.seen += count
        if len(self.scores) > 2 * self.k:
            self._keep(self.k)

    def _ranking(self):
        """[entries, classes]: each column's entries, best first."""
        return np.lexsort((self.order.T, -self.scores.T)).T

    def _keep(self, rows):
        ranking = self._ranking()[:rows]
        self.scores, self.order, self.ids = (
            np.take_along_axis(values, ranking, axis=0)
            for values in (self.scores, self.order, self.ids)
        )

    def lists(self):
        """{class: [(segment id, score), ...] best first, at most k}."""
        self._keep(self.k)
        return {
            int(c): list(
                zip(self.ids[:, column].tolist(), self.scores[:, column].tolist(), strict=True)
            )
            for column, c in enumerate(self.classes)
        }


def average_precision_at_k(ranked_ids, ratings, k):
    """AP@K of one class's ranked segment ids, `ratings` {segment id: score} of that
    class (unrated ids ignored); None when the class has no positive rating."""
    positives = sum(1 for score in ratings.values() if score > 0)
    if not positives:
        return None
    rated = hits = 0
    total = 0.0
    for segment_id in ranked_ids[:k]:
        if segment_id not in ratings:
            continue
        rated += 1
        if ratings[segment_id] > 0:
            hits += 1
            total += hits / rated
    return total / min(positives, k)


def mean_average_precision_at_k(lists, ratings, k):
    """(MAP@K, {class: AP@K}) of ranked lists {class: [segment id, ...]} against
    `ratings` {class: {segment id: score}}, over the classes of `lists` with a
    positive rating."""
    aps = {}
    for c, ranked in lists.items():
        ap = average_precision_at_k(ranked, ratings.get(c, {}), k)
        if ap is not None:
            aps[c] = ap
    return (float(np.mean(list(aps.values()))) if aps else 0.0), aps


class SegmentMetrics:
    """MAP@K over the whitelisted `classes` and the segment GAP, over an evaluation."""

    def __init__(self, classes, k=DEFAULT_K):
        self.k = k
        self.top = TopSegments(classes, k)
        self.whitelist = set(int(c) for c in classes)
        self.ratings = {}  # class: {segment id: score}
        self.gap = AveragePrecisionCalculator()
        self.num_segments = 0

    def accumulate(self, segment_ids, predictions, labels, weights):
        predictions, labels = np.asarray(predictions), np.asarray(labels)
        rated = np.asarray(weights) > 0
        self.gap.accumulate(predictions[rated], labels[rated], float((labels[rated] > 0).sum()))
        for row, c in zip(*np.nonzero(rated), strict=True):
            if int(c) in self.whitelist:
                segment_id = segment_ids[row]
                segment_id = segment_id.decode() if isinstance(segment_id, bytes) else segment_id
                self.ratings.setdefault(int(c), {})[segment_id] = float(labels[row, c])
        self.top.add(segment_ids, predictions)
        self.num_segments += len(segment_ids)

    def get(self):
        lists = {c: [segment for segment, _ in ranked] for c, ranked in self.top.lists().items()}
        mean, aps = mean_average_precision_at_k(lists, self.ratings, self.k)
        return {
            "segment_map": mean,
            "segment_gap": self.gap.peek_ap(),
            "segment_top_k": self.k,
            "classes_scored": len(aps),
            "num_segments": self.num_segments,
        }
