"""YouTube-8M evaluation metrics: Hit@1, PERR, GAP and mAP.

All functions take numpy arrays `predictions` [videos, classes] (scores) and
`actuals` [videos, classes] (0/1 labels). `EvaluationMetrics` accumulates over
a whole evaluation set; its GAP and mAP are those of the pooled set, not an
average of per-batch values. It keeps only what the pooled metrics need (each
video's top-k entries, compact); the per-video work before it can run in the
graph (`metric_tensors.py`), so that evaluation goes at the model's speed.
"""

import numpy as np

from fewer_frames.config import settings
from fewer_frames.evaluation.average_precision_calculator import AveragePrecisionCalculator
from fewer_frames.evaluation.mean_average_precision_calculator import MeanAveragePrecisionCalculator


def video_metric_values(predictions, actuals, top_k=20):
    """The per-video work of the metrics, in numpy (`metric_tensors` does the same
    in the graph): each video's classes ranked by score, equal scores by class id.

    Returns {"top_ids", "top_scores", "top_labels"}: [videos, min(top_k, classes)],
    the best classes, their scores and whether they are labels; "hit_at_one"
    [videos]: the best class is a label; "num_labels" and "perr_hits" [videos]: m
    labels, and how many of them are among the m best classes; and
    "positives_per_class" [classes].
    """
    predictions, actuals = np.asarray(predictions), np.asarray(actuals) > 0
    num_labels = actuals.sum(axis=1)
    order = np.argsort(-predictions, axis=1, kind="stable")
    hits = np.take_along_axis(actuals, order, axis=1)
    in_top_m = np.arange(predictions.shape[1])[None, :] < num_labels[:, None]
    top = order[:, :top_k]
    return {
        "top_ids": top,
        "top_scores": np.take_along_axis(predictions, top, axis=1),
        "top_labels": hits[:, :top_k],
        "hit_at_one": hits[:, 0] if hits.shape[1] else np.zeros(len(hits), bool),
        "num_labels": num_labels,
        "perr_hits": (hits & in_top_m).sum(axis=1),
        "positives_per_class": actuals.sum(axis=0),
    }


def _hit_at_one(values):
    return float(np.mean(values["hit_at_one"])) if len(values["hit_at_one"]) else 0.0


def _perr(values):
    """Precision at equal recall per video (0 for a video without labels), averaged."""
    num_labels = values["num_labels"]
    if not len(num_labels):
        return 0.0
    correct = np.asarray(values["perr_hits"], np.float64)
    return float(
        np.divide(correct, num_labels, out=np.zeros(len(correct)), where=num_labels > 0).mean()
    )


def calculate_hit_at_one(predictions, actuals):
    """Fraction of videos whose top-scored class is one of their labels."""
    return _hit_at_one(video_metric_values(predictions, actuals, top_k=1))


def calculate_precision_at_equal_recall_rate(predictions, actuals):
    """Per video with m labels, the precision of its top m predictions; the mean over videos.

    A video without labels counts as 0 (the YouTube-8M convention).
    """
    return _perr(video_metric_values(predictions, actuals, top_k=1))


def calculate_gap(predictions, actuals, top_k=20):
    """Global average precision of the pooled top_k predictions of every video."""
    values = video_metric_values(predictions, actuals, top_k)
    calculator = AveragePrecisionCalculator()
    calculator.accumulate(
        values["top_scores"], values["top_labels"], values["positives_per_class"].sum()
    )
    return calculator.peek_ap()


class EvaluationMetrics:
    """Accumulates Hit@1, PERR, loss, GAP and per-class AP over an evaluation set."""

    def __init__(self, num_class, top_k=20):
        settings.checked_top_k(top_k)
        self.num_class = num_class
        self.top_k = top_k
        # One pool of top-k entries serves the GAP (pooled) and the mAP (per class).
        self.map_calculator = MeanAveragePrecisionCalculator(num_class)
        self.clear()

    def clear(self):
        self.sum_hit_at_one = 0.0
        self.sum_perr = 0.0
        self.sum_loss = 0.0
        self.num_examples = 0
        self.map_calculator.clear()

    def accumulate(self, predictions, labels, loss):
        """Adds one batch; `loss` is the batch's mean loss (a scalar) or one loss per
        video. Returns the batch's own metrics."""
        predictions, labels = np.asarray(predictions), np.asarray(labels)
        if predictions.shape != labels.shape:
            raise ValueError(
                f"predictions {predictions.shape} and labels {labels.shape} differ in shape"
            )
        return self.accumulate_values(video_metric_values(predictions, labels, self.top_k), loss)

    def accumulate_values(self, values, loss):
        """Adds one batch's per-video values (`video_metric_values`, or the same
        computed in the graph by `metric_tensors.video_metric_tensors`)."""
        batch_size = len(values["hit_at_one"])
        hit_at_one, perr = _hit_at_one(values), _perr(values)
        self.map_calculator.accumulate(
            values["top_ids"],
            values["top_scores"],
            values["top_labels"],
            values["positives_per_class"],
        )
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
        aps, gap = self.map_calculator.peek_aps_and_pooled_ap()
        return {
            "avg_hit_at_one": self.sum_hit_at_one / count,
            "avg_perr": self.sum_perr / count,
            "avg_loss": self.sum_loss / count,
            "gap": gap,
            "map": float(aps.mean()),
            "map_present_classes": self.map_calculator.map_present_classes(aps),
            "aps": aps,
            "num_examples": self.num_examples,
        }
