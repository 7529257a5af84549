"""Average precision of one pooled, ranked list of (score, is-positive) entries,
accumulated over many batches: e.g. the global average precision (GAP), where
every video contributes its top-k predictions to a single list. The entries are
kept and ranked by `ranked_entries.RankedEntries` (compact, bounded memory)."""

import numpy as np

from fewer_frames.evaluation.ranked_entries import RankedEntries


class AveragePrecisionCalculator:
    """Accumulates one ranked list over batches and reports its average precision."""

    def __init__(self):
        self._entries = RankedEntries(num_lists=1)
        self.clear()

    def clear(self):
        self._entries.clear()
        self._num_positives = 0.0

    def accumulate(self, scores, labels, num_positives=None):
        """Adds entries; `num_positives` defaults to the positives among them."""
        scores = np.asarray(scores).ravel()
        labels = np.asarray(labels).ravel()
        if scores.shape != labels.shape:
            raise ValueError(f"scores {scores.shape} and labels {labels.shape} differ in shape")
        self._entries.add(np.zeros(scores.size, np.int16), scores, labels)
        self._num_positives += float((labels > 0).sum() if num_positives is None else num_positives)

    @property
    def num_positives(self):
        return self._num_positives

    def peek_ap(self):
        return float(self._entries.average_precisions([self._num_positives])[0][0])
