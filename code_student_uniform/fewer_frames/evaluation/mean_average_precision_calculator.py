"""Per-class average precision over many batches, and their mean (mAP)."""

import numpy as np

from fewer_frames.evaluation.average_precision_calculator import average_precisions


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
        self.clear()

    def clear(self):
        self._class_ids = []
        self._scores = []
        self._labels = []
        self._num_positives = np.zeros(self.num_class, np.float64)

    def accumulate(self, class_ids, scores, labels, num_positives):
        """Adds entries and the batch's positives per class ([num_class])."""
        self._class_ids.append(np.asarray(class_ids, np.int64).ravel())
        self._scores.append(np.asarray(scores, np.float64).ravel())
        self._labels.append(np.asarray(labels, np.float64).ravel())
        self._num_positives += np.asarray(num_positives, np.float64)

    def is_empty(self):
        return not self._class_ids

    @property
    def num_positives(self):
        return self._num_positives

    def peek_aps(self):
        """Average precision of every class ([num_class]; 0 for classes without positives)."""
        if self.is_empty():
            return np.zeros(self.num_class)
        return average_precisions(
            np.concatenate(self._class_ids),
            np.concatenate(self._scores),
            np.concatenate(self._labels),
            self._num_positives,
            self.num_class,
        )

    def peek_map(self):
        """Mean AP over all `num_class` classes, a class without positives counting 0:
        the YouTube-8M starter code's mAP, the number in the paper's Table 1."""
        return float(self.peek_aps().mean())

    def peek_map_present_classes(self):
        """Mean AP over the classes with at least one positive (0 if there are none)."""
        present = self._num_positives > 0
        if not present.any():
            return 0.0
        return float(self.peek_aps()[present].mean())
