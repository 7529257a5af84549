"""YouTube-8M evaluation metrics: Hit@1, PERR, GAP and mAP.

All functions take numpy arrays `predictions` [videos, classes] (scores) and
`actuals` [videos, classes] (0/1 labels). `EvaluationMetrics` accumulates over
a whole evaluation set; its GAP and mAP are those of the pooled set, not an
average of per-batch values.
"""

import numpy as np

from fewer_frames.config import settings
from fewer_frames.evaluation.average_precision_calculator import AveragePrecisionCalculator
from fewer_frames.evaluation.mean_average_precision_calculator import MeanAveragePrecisionCalculator


def calculate_hit_at_one(predictions, actuals):
    """Fraction of videos whose top-scored class is one of their labels."""
    predictions, actuals = np.asarray(predictions), np.asarray(actuals)
    if predictions.shape[0] == 0:
        return 0.0
    top = np.argmax(predictions, axis=1)
    return float(np.mean(actuals[np.arange(actuals.shape[0]), top] > 0))


def calculate_precision_at_equal_recall_rate(predictions, actuals):
    """Per video with m labels, the precision of its top m predictions; the mean over videos.

    A video without labels counts as 0 (the YouTube-8M convention).
    """
    predictions, actuals = np.asarray(predictions), np.asarray(actuals)
    if predictions.shape[0] == 0:
        return 0.0
    num_labels = (actuals > 0).sum(axis=1)
    # Descending rank order; the top m of each row are the first m columns.
    order = np.argsort(-predictions, axis=1, kind="stable")
    hits = np.take_along_axis(actuals > 0, order, axis=1)
    in_top_m = np.arange(predictions.shape[1])[None, :] < num_labels[:, None]
    correct = (hits & in_top_m).sum(axis=1)
    precision = np.divide(correct, num_labels, out=np.zeros(len(correct)), where=num_labels > 0)
    return float(precision.mean())


def top_k_entries(predictions, actuals, top_k=20):
    """Each video's top_k predictions as flat (class id, score, label) arrays."""
    predictions, actuals = np.asarray(predictions), np.asarray(actuals)
    top_k = min(top_k, predictions.shape[1])
    top = np.argpartition(-predictions, top_k - 1, axis=1)[:, :top_k]
    scores = np.take_along_axis(predictions, top, axis=1)
    labels = np.take_along_axis(actuals > 0, top, axis=1)
    return top.ravel(), scores.ravel(), labels.ravel().astype(np.float64)


def calculate_gap(predictions, actuals, top_k=20):
    """Global average precision of the pooled top_k predictions of every video."""
    _, scores, labels = top_k_entries(predictions, actuals, top_k)
    calculator = AveragePrecisionCalculator()
    calculator.accumulate(scores, labels, num_positives=float((np.asarray(actuals) > 0).sum()))
    return calculator.peek_ap()


class EvaluationMetrics:
    """Accumulates Hit@1, PERR, loss, GAP and per-class AP over an evaluation set."""

    def __init__(self, num_class, top_k=20):
        settings.checked_top_k(top_k)
        self.num_class = num_class
        self.top_k = top_k
        self.gap_calculator = AveragePrecisionCalculator()
        self.map_calculator = MeanAveragePrecisionCalculator(num_class)
        self.clear()

    def clear(self):
        self.sum_hit_at_one = 0.0
        self.sum_perr = 0.0
        self.sum_loss = 0.0
        self.num_examples = 0
        self.gap_calculator.clear()
        self.map_calculator.clear()

    def accumulate(self, predictions, labels, loss):
        """Adds one batch; `loss` is the batch's mean loss (a scalar) or one loss per
        video. Returns the batch's own metrics."""
        predictions, labels = np.asarray(predictions), np.asarray(labels)
        if predictions.shape != labels.shape:
            raise ValueError(
                f"predictions {predictions.shape} and labels {labels.shape} differ in shape"
            )
        batch_size = predictions.shape[0]
        hit_at_one = calculate_hit_at_one(predictions, labels)
        perr = calculate_precision_at_equal_recall_rate(predictions, labels)
        class_ids, scores, top_labels = top_k_entries(predictions, labels, self.top_k)
        positives_per_class = (labels > 0).sum(axis=0)
        self.gap_calculator.accumulate(scores, top_labels, positives_per_class.sum())
        self.map_calculator.accumulate(class_ids, scores, top_labels, positives_per_class)
        self.sum_hit_at_one += hit_at_one * batch_size
        self.sum_perr += perr * batch_size
        loss = np.asarray(loss, np.float64)
        mean_loss = float(loss.mean()) if loss.ndim else float(loss)
        self.sum_loss += mean_loss * batch_size
        self.num_examples += batch_size
        return {"hit_at_one": hit_at_one, "perr": perr, "loss": mean_loss}

    def get(self):
        """Metrics of everything accumulated since the last `clear`."""
        count = max(self.num_examples, 1)
        aps = self.map_calculator.peek_aps()
        return {
            "avg_hit_at_one": self.sum_hit_at_one / count,
            "avg_perr": self.sum_perr / count,
            "avg_loss": self.sum_loss / count,
            "gap": self.gap_calculator.peek_ap(),
            "map": self.map_calculator.peek_map(),
            "map_present_classes": self.map_calculator.peek_map_present_classes(),
            "aps": aps,
            "num_examples": self.num_examples,
        }
