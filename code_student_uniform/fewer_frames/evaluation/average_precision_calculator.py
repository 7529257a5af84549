"""Average precision over a pooled, ranked list of (score, is-positive) pairs.

`average_precisions` is the one implementation; it ranks the entries of many
lists (one per class id) at once. `AveragePrecisionCalculator` accumulates one
list over many batches, e.g. for the global average precision (GAP), where every
video contributes its top-k predictions to a single list.
"""

import numpy as np


def average_precisions(list_ids, scores, labels, num_positives, num_lists):
    """Average precision of each of `num_lists` ranked lists.

    Args:
      list_ids: int array [N]: which list each entry belongs to.
      scores: float array [N]: the entries' scores; higher ranks first.
      labels: array [N]: 1 for a positive entry, 0 otherwise.
      num_positives: array [num_lists]: positives of each list, including
        positives that have no entry (they lower recall, so they count).
      num_lists: how many lists there are.

    Returns:
      float64 array [num_lists]: sum over positive entries of precision at their
      rank, divided by num_positives; 0 where a list has no positives.
    """
    list_ids = np.asarray(list_ids, np.int64)
    scores = np.asarray(scores, np.float64)
    labels = np.asarray(labels, np.float64)
    num_positives = np.asarray(num_positives, np.float64)
    result = np.zeros(num_lists, np.float64)
    if list_ids.size == 0:
        return result
    # Rank by list, then by descending score; ties keep their arrival order.
    order = np.lexsort((np.arange(list_ids.size), -scores, list_ids))
    list_ids, labels = list_ids[order], labels[order]
    list_starts = np.searchsorted(list_ids, list_ids, side="left")
    rank = np.arange(list_ids.size) - list_starts + 1
    cumulative = np.cumsum(labels)
    positives_before_list = np.concatenate([[0.0], cumulative])[list_starts]
    precision = (cumulative - positives_before_list) / rank
    summed = np.bincount(list_ids, weights=precision * labels, minlength=num_lists)
    has_positives = num_positives > 0
    result[has_positives] = summed[has_positives] / num_positives[has_positives]
    return result


class AveragePrecisionCalculator:
    """Accumulates one ranked list over batches and reports its average precision."""

    def __init__(self):
        self.clear()

    def clear(self):
        self._scores = []
        self._labels = []
        self._num_positives = 0.0

    def accumulate(self, scores, labels, num_positives=None):
        """Adds entries; `num_positives` defaults to the positives among them."""
        scores = np.asarray(scores, np.float64).ravel()
        labels = np.asarray(labels, np.float64).ravel()
        if scores.shape != labels.shape:
            raise ValueError(f"scores {scores.shape} and labels {labels.shape} differ in shape")
        self._scores.append(scores)
        self._labels.append(labels)
        self._num_positives += float(labels.sum() if num_positives is None else num_positives)

    @property
    def num_positives(self):
        return self._num_positives

    def peek_ap(self):
        if not self._scores:
            return 0.0
        scores = np.concatenate(self._scores)
        labels = np.concatenate(self._labels)
        ids = np.zeros(scores.size, np.int64)
        return float(average_precisions(ids, scores, labels, [self._num_positives], 1)[0])
