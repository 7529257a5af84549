"""Whole-file label readers for the tools (ensembles, segment scoring): the labels
of every video of a data pattern, and the segment ratings of 2019 records."""

import tensorflow as tf

from fewer_frames.inputs import readers
from fewer_frames.system.errors import UserError


def labels_by_video(data_pattern, frame_features, id_feature, num_classes, batch_size=1024):
    """{video id: its sorted labels} of every record a pattern matches, parsing only
    the id and the labels (eager mode). A missing id or a label outside the
    classes is a UserError naming the file."""
    labels = {}
    context = dict(readers._id_features(id_feature), labels=tf.io.VarLenFeature(tf.int64))
    for path in readers.match_files(data_pattern):
        for records in tf.data.TFRecordDataset(path).batch(batch_size):
            if frame_features:
                parsed = tf.io.parse_sequence_example(records, context_features=context)[0]
            else:
                parsed = tf.io.parse_example(records, context)
            values = tf.sparse.to_dense(parsed["labels"], default_value=-1).numpy()
            for video_id, row in zip(parsed[id_feature].numpy(), values, strict=True):
                row = sorted(int(label) for label in row if label >= 0)
                if not video_id or any(label >= num_classes for label in row):
                    raise UserError(
                        f"{path} holds a record without {id_feature!r} or with a label outside "
                        f"0..{num_classes - 1}; check --dataset_version and --frame_features"
                    )
                labels[video_id.decode()] = row
    return labels


def segment_ratings(data_pattern, id_feature, batch_size=1024):
    """{class: {"<video id>:<start>": rated score}} of the 2019 records a pattern
    matches, parsing only their context (eager mode); lists of unequal length are
    a UserError naming the file."""
    ratings = {}
    context = dict(
        readers._id_features(id_feature),
        **{name: tf.io.VarLenFeature(dtype) for name, dtype in readers.SEGMENT_LISTS},
    )
    for path in readers.match_files(data_pattern):
        for records in tf.data.TFRecordDataset(path).batch(batch_size):
            parsed = tf.io.parse_sequence_example(records, context_features=context)[0]
            lists = [tf.RaggedTensor.from_sparse(parsed[name]) for name, _ in readers.SEGMENT_LISTS]
            for video_id, starts, classes, scores in zip(
                parsed[id_feature].numpy(), *(values.to_list() for values in lists), strict=True
            ):
                if not len(starts) == len(classes) == len(scores):
                    raise UserError(f"{path} holds a record with segment lists of unequal length")
                for start, c, score in zip(starts, classes, scores, strict=True):
                    ratings.setdefault(int(c), {})[f"{video_id.decode()}:{start}"] = float(score)
    return ratings
