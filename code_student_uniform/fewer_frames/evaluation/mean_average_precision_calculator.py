"""Per-class average precision over many batches, and their mean (mAP)."""

import numpy as np

from fewer_frames.evaluation.ranked_entries import RankedEntries


class MeanAveragePrecisionCalculator:
    """Keeps one ranked list per class.

    Entries arrive as flat (class id, score, label) arrays, typically the
    top-k predictions of every video; positives of a class that never made a
    top-k still count through `num_positives`.
    """

    def __init__(self, num_class):
        if num_class <= 0:
            raise ValueError(f"num_class must be positive, got {num_class}")
        self.num_class = num_class
        self._entries = RankedEntries(num_class)
        self.clear()

    def clear(self):
        self._entries.clear()
        self._num_positives = np.zeros(self.num_class, np.int64)

    def accumulate(self, class_ids, scores, labels, num_positives):
        """Adds entries and the batch's positives per class ([num_class])."""
        self._entries.add(class_ids, scores, labels)
        self._num_positives += np.asarray(num_positives, np.int64)

    def is_empty(self):
        return self._entries.size == 0

    @property
    def num_positives(self):
        return self._num_positives

    def peek_aps_and_pooled_ap(self):
        """(AP of every class [num_class], 0 for a class without positives; AP of
        all entries ranked in one list against all positives: the GAP)."""
        return self._entries.average_precisions(self._num_positives)

    def peek_aps(self):
        """Average precision of every class ([num_class]; 0 for classes without positives)."""
        return self.peek_aps_and_pooled_ap()[0]

    def peek_map(self):
        """Mean AP over all `num_class` classes, a class without positives counting 0:
        the YouTube-8M starter code's mAP, the number in the paper's Table 1."""
        return float(self.peek_aps().mean())

    def map_present_classes(self, aps):
        """Mean of `aps` over the classes with at least one positive (0 if none)."""
        present = self._num_positives > 0
        return float(np.asarray(aps)[present].mean()) if present.any() else 0.0

    def peek_map_present_classes(self):
        """Mean AP over the classes with at least one positive (0 if there are none)."""
        return self.map_present_classes(self.peek_aps())
