"""The YouTube-8M metrics worked out one video and one entry at a time, in plain
Python: the oracles the vectorised metrics (numpy and in-graph) are held to."""

import numpy as np


def brute_force_ap(scores, labels, num_positives):
    """AP by walking the ranked list one entry at a time (equal scores keep their order)."""
    order = sorted(range(len(scores)), key=lambda index: -scores[index])
    hits, total = 0, 0.0
    for rank, index in enumerate(order, start=1):
        if labels[index]:
            hits += 1
            total += hits / rank
    return total / float(num_positives) if num_positives else 0.0


def ranked_classes(row):
    """A video's classes, best score first, equal scores by class id."""
    return sorted(range(len(row)), key=lambda cls: (-row[cls], cls))


def brute_force_gap_and_map(predictions, actuals, top_k):
    """(GAP, mAP over every class, mAP over the classes with a positive)."""
    pooled = []
    for row in range(predictions.shape[0]):
        top = ranked_classes(predictions[row])[:top_k]
        pooled += [(cls, predictions[row, cls], actuals[row, cls]) for cls in top]
    gap = brute_force_ap([p[1] for p in pooled], [p[2] for p in pooled], actuals.sum())
    present_aps = []
    for cls in range(predictions.shape[1]):
        positives = actuals[:, cls].sum()
        if positives:
            entries = [p for p in pooled if p[0] == cls]
            ap = brute_force_ap([p[1] for p in entries], [p[2] for p in entries], positives)
            present_aps.append(ap)
    # mAP over every class (absent ones count 0), and over the classes present.
    return gap, sum(present_aps) / predictions.shape[1], float(np.mean(present_aps))


def brute_force_hit_at_one_and_perr(predictions, actuals):
    """(Hit@1, PERR): per video, is the best class a label; of its m labels, how
    many are among its m best classes (0 for a video without labels)."""
    hits, precisions = [], []
    for row, labels in zip(predictions, actuals, strict=True):
        ranked = ranked_classes(row)
        positives = {cls for cls in range(len(labels)) if labels[cls] > 0}
        hits.append(ranked[0] in positives)
        m = len(positives)
        precisions.append(len(positives & set(ranked[:m])) / m if m else 0.0)
    return float(np.mean(hits)), float(np.mean(precisions))
