"""The per-video work of the evaluation metrics as graph ops, run with the model.

`video_metric_tensors` computes what `eval_util.video_metric_values` computes in
numpy, equal value for value: an evaluation then fetches a few numbers per
video instead of every class's score and label, and numpy is left with the
final ranking of the pooled top-k entries.
"""

import tensorflow as tf


def video_metric_tensors(predictions, labels, top_k=20):
    """Tensors of each video's top classes, Hit@1, PERR counts and the batch's
    positives per class (see `eval_util.video_metric_values`)."""
    labels = labels if labels.dtype == tf.bool else labels > 0
    num_labels = tf.reduce_sum(tf.cast(labels, tf.int32), axis=1)
    num_classes = tf.shape(predictions)[1]
    # Enough of the ranking for the top_k entries and for each video's m labels;
    # top_k ranks equal scores by class id, as a stable sort does.
    depth = tf.minimum(tf.maximum(top_k, tf.reduce_max(num_labels)), num_classes)
    scores, classes = tf.math.top_k(predictions, k=depth, sorted=True)
    hits = tf.gather(labels, classes, batch_dims=1)
    in_top_m = tf.range(depth)[None, :] < num_labels[:, None]
    kept = tf.minimum(top_k, num_classes)
    return {
        "top_ids": classes[:, :kept],
        "top_scores": scores[:, :kept],
        "top_labels": hits[:, :kept],
        "hit_at_one": hits[:, 0],
        "num_labels": num_labels,
        "perr_hits": tf.reduce_sum(tf.cast(hits & in_top_m, tf.int32), axis=1),
        "positives_per_class": tf.reduce_sum(tf.cast(labels, tf.int32), axis=0),
    }
