"""Says what is wrong with bad YouTube-8M data, naming the file and the record.

The input pipeline flags a bad record cheaply in the graph and names it
("<file>, record <n>", n counted from 0); `explain_input_error` turns the
resulting TensorFlow error into a `UserError` whose text comes from
`describe_problem`, which parses that one record in Python and says precisely
what is wrong and what to do. The same check filters records under
--skip_bad_records, where each input pipeline's `BadRecordCounter` counts and
logs what it skipped.
"""

import contextlib
import math
import re
import threading

import tensorflow as tf
from absl import logging
from google.protobuf.message import DecodeError

from fewer_frames.inputs import yt8m_format
from fewer_frames.system.errors import UserError

# A record is named "<file>, record <index>" in messages and in the input
# pipeline's example names; the readers' check of a batch fails with the
# marker and the name of the first bad record.
RECORD_NAME_SEPARATOR = ", record "
BAD_RECORD_MARKER = "Bad record:"
# Found after the parser's "Name: " or the check's "[Bad record:] [".
RECORD_NAME = re.compile(
    rf"(?:Name: |{re.escape(BAD_RECORD_MARKER)}\]\s*\[)([^\[\]\n]+?)"
    rf"{RECORD_NAME_SEPARATOR}(\d+)"
)
CORRUPT_OFFSET = re.compile(r"(?:corrupted|truncated) record at (\d+)")
SKIP_ADVICE = "fix or remove the file, or pass --skip_bad_records to skip bad records"


def record_name(path, index):
    return f"{path}{RECORD_NAME_SEPARATOR}{index}"


class BadRecordCounter:
    """Counts and logs the records skipped under --skip_bad_records (thread safe)."""

    def __init__(self):
        self._lock = threading.Lock()
        self.count = 0

    def report(self, path, index, problem):
        with self._lock:
            self.count += 1
        logging.warning("skipping bad record %s: %s", record_name(path, index), problem)


def _other_version(id_feature):
    for version, info in yt8m_format.DATASET_VERSIONS.items():
        if info["id_feature"] != id_feature:
            return version, info["id_feature"]
    return None, None


def _check_id_and_labels(features, reader):
    if reader.id_feature not in features:
        version, other_key = _other_version(reader.id_feature)
        if other_key in features:
            return (
                f"has no '{reader.id_feature}' but has '{other_key}': it looks like the "
                f"{version} version of YouTube-8M; use --dataset_version={version}"
            )
        return f"has no '{reader.id_feature}' (the video id)"
    labels = list(features["labels"].int64_list.value) if "labels" in features else []
    outside = [label for label in labels if not 0 <= label < reader.num_classes]
    if outside:
        hint = ""
        if reader.num_classes < 4716 and max(outside) < 4716:
            hint = " (the 2017 version has 4716 classes: --dataset_version=2017?)"
        return (
            f"has label {outside[0]} outside 0..{reader.num_classes - 1} "
            f"(--num_classes={reader.num_classes}){hint}"
        )
    return None


def _frame_level_problem(example, reader):
    context = example.context.feature
    lists = example.feature_lists.feature_list
    missing = [name for name in reader.feature_names if name not in lists]
    if missing and not lists and not any(name.startswith("mean_") for name in context):
        return "has zero frames (no feature lists)"
    if missing:
        if any(name.startswith("mean_") for name in context):
            return "is a video-level record (mean_* features): use --frame_features=False"
        present = ", ".join(sorted(lists)) or "none"
        return f"has no feature list '{missing[0]}' (it has: {present}); check --feature_names"
    counts = {name: len(lists[name].feature) for name in reader.feature_names}
    if len(set(counts.values())) > 1:
        detail = ", ".join(f"{count} '{name}'" for name, count in counts.items())
        return f"has different frame counts per feature: {detail}"
    if not any(counts.values()):
        return "has zero frames"
    for name, size in zip(reader.feature_names, reader.feature_sizes, strict=True):
        for frame, feature in enumerate(lists[name].feature):
            values = feature.bytes_list.value
            length = len(values[0]) if len(values) == 1 else None
            if length != size:
                found = f"{length} bytes" if length is not None else f"{len(values)} values"
                return (
                    f"has frame {frame} of '{name}' with {found}, but --feature_sizes gives {size}"
                )
    return None


def _video_level_problem(example, reader):
    features = example.features.feature
    for name, size in zip(reader.feature_names, reader.feature_sizes, strict=True):
        if name not in features:
            present = ", ".join(sorted(features)) or "none"
            return f"has no feature '{name}' (it has: {present}); check --feature_names"
        values = features[name].float_list.value
        if len(values) != size:
            return f"'{name}' has {len(values)} values, but --feature_sizes gives {size}"
        if not all(math.isfinite(value) for value in values):
            return f"'{name}' holds NaN or infinite values"
    return None


def describe_problem(serialized, reader):
    """What is wrong with one serialized record for `reader`, or None if nothing."""
    frame_level = hasattr(reader, "max_frames")
    proto = tf.train.SequenceExample if frame_level else tf.train.Example
    try:
        example = proto.FromString(serialized)
    except DecodeError as error:
        return f"is not a tf.train.{proto.__name__} ({error})"
    features = example.context.feature if frame_level else example.features.feature
    problem = _check_id_and_labels(features, reader)
    if problem:
        return problem
    problem = (_frame_level_problem if frame_level else _video_level_problem)(example, reader)
    if problem or not getattr(reader, "segment_size", 0):
        return problem
    return _segment_problem(example, reader)


def _segment_problem(example, reader):
    """What is wrong with the segment ratings of a 2019 record, or None."""
    context = example.context.feature
    starts = list(context["segment_start_times"].int64_list.value)
    classes = list(context["segment_labels"].int64_list.value)
    scores = list(context["segment_scores"].float_list.value)
    if not len(starts) == len(classes) == len(scores):
        return (
            f"has segment lists of unequal length ({len(starts)} segment_start_times, "
            f"{len(classes)} segment_labels, {len(scores)} segment_scores)"
        )
    first_feature = example.feature_lists.feature_list[reader.feature_names[0]]
    frames = min(len(first_feature.feature), reader.max_frames)
    for start, label in zip(starts, classes, strict=True):
        if not 0 <= start < frames:
            return f"has a segment starting at frame {start}, past its {frames} frames read"
        if not 0 <= label < reader.num_classes:
            return f"has segment label {label}, outside 0..{reader.num_classes - 1}"
    return None


def _records(path):
    return tf.compat.v1.io.tf_record_iterator(path)


def read_record(path, index):
    for position, record in enumerate(_records(path)):
        if position == index:
            return record
    return None


def checked_records(path, reader, bad_records, first_key=0):
    """Yields (first_key + index, record) of the good records of a file; reports the
    bad ones to `bad_records` (a BadRecordCounter)."""
    path = path.decode() if isinstance(path, bytes) else path
    index = -1
    try:
        for index, record in enumerate(_records(path)):
            problem = describe_problem(record, reader)
            if problem:
                bad_records.report(path, index, problem)
                continue
            yield first_key + index, record
    except tf.errors.DataLossError as error:
        bad_records.report(
            path, index + 1, f"corrupted or truncated ({error.message}); rest of file skipped"
        )


def locate_corrupt_record(files, offset=None):
    """(path, index, message) of the first record that cannot be read, or None."""
    for path in files:
        if offset is not None and tf.io.gfile.stat(path).length <= offset:
            continue
        readable = 0
        try:
            for _ in _records(path):
                readable += 1
        except tf.errors.DataLossError as error:
            return path, readable, error.message
    return None


def explain_input_error(error, reader, files):
    """A UserError naming the bad file and record behind `error`, or None."""
    message = getattr(error, "message", str(error))
    if isinstance(error, tf.errors.DataLossError):
        offset = CORRUPT_OFFSET.search(message)
        found = locate_corrupt_record(files, int(offset.group(1)) if offset else None)
        if found is None:
            return UserError(f"a data file could not be read: {message.strip().splitlines()[-2:]}")
        path, index, detail = found
        not_tfrecord = "Is this even a TFRecord" in detail
        what = (
            "is not a TFRecord file"
            if not_tfrecord and index == 0
            else ("is corrupted or truncated (bad length or CRC)")
        )
        return UserError(
            f"{record_name(path, index)} {what}; re-create or remove the file, or pass "
            "--skip_bad_records to skip what cannot be read"
        )
    if isinstance(error, tf.errors.NotFoundError):
        gone = [path for path in files if path in message]
        if gone:
            return UserError(
                f"{gone[0]} is gone: the data file was removed or moved while the run read "
                "it (a training run keeps its last checkpoint); put it back, or run again with "
                "a data pattern that matches only files that stay"
            )
        return None
    if not isinstance(error, tf.errors.InvalidArgumentError):
        return None
    named = RECORD_NAME.search(message)
    if not named:
        return None
    path, index = named.group(1), int(named.group(2))
    record = read_record(path, index)
    problem = describe_problem(record, reader) if record is not None else None
    if problem is None:
        lines = [line for line in message.splitlines() if named.group(0) in line]
        problem = f"could not be parsed: {(lines or [message])[0].strip()}"
    advice = "" if "use --" in problem else f"; {SKIP_ADVICE}"
    return UserError(f"{record_name(path, index)} {problem}{advice}")


@contextlib.contextmanager
def explained_input_errors(reader, files):
    """Turns errors from bad input records of `files` into UserErrors that name them."""
    try:
        yield
    except (
        tf.errors.DataLossError,
        tf.errors.InvalidArgumentError,
        tf.errors.NotFoundError,
    ) as error:
        explained = explain_input_error(error, reader, files)
        if explained is None:
            raise
        raise explained from None
