"""Readers that turn YouTube-8M TFRecords into batches of tensors.

Each reader's `prepare_serialized_examples(serialized_batch, example_names)`
parses a batch of serialized protos into a dict with `video_ids` [B] string,
`video_matrix` (frame level [B, max_frames, sum(feature_sizes)], video level
[B, sum(feature_sizes)]), `labels` [B, num_classes] float 0/1 and `num_frames`
[B] int32; the frame reader adds `decoded_by_slicing` [B] bool, true where the
record's frames were cut out of its bytes (the fast path below) rather than
parsed. A record that would give wrong tensors (missing id, frames of the
wrong size, unequal frame counts, no frames, labels out of range, NaN) stops
the pipeline with an error naming it (see record_checks.py). A frame reader
given a frame selection (a student-only run) copies just the selected frames
out of each record (record_slicing.py) instead of parsing every frame. A frame
reader with a `segment_size` reads the rated segments of the 2019 Segments
release instead of whole videos (see `YT8MFrameFeatureReader`).
`get_input_data_tensors` builds the `tf.data` pipeline around a reader for every
binary.
"""

import copy
import dataclasses

import tensorflow as tf

from fewer_frames.config import settings
from fewer_frames.inputs import record_checks, record_slicing, yt8m_format
from fewer_frames.inputs.frame_selection import select_frames
from fewer_frames.system.errors import UserError


def input_tensors(inputs, reader, data_pattern, **options):
    """`get_input_data_tensors` with the settings.InputSettings `inputs` (`options`:
    its other keyword arguments; the reader already reads segments or not)."""
    pipeline = dataclasses.asdict(inputs)
    del pipeline["segment_labels"], pipeline["segment_size"]
    return get_input_data_tensors(reader, data_pattern, **options, **pipeline)


def _dense_labels(sparse_labels, num_classes):
    """Sparse int64 class lists to a dense float 0/1 matrix [B, num_classes]."""
    indicator = tf.sparse.to_indicator(sparse_labels, num_classes)
    return tf.cast(indicator, tf.float32)


def _labels_out_of_range(sparse_labels, num_classes, batch_size):
    """[B] bool: the video has a label outside 0..num_classes-1."""
    rows = sparse_labels.indices[:, 0]
    outside = tf.cast((sparse_labels.values < 0) | (sparse_labels.values >= num_classes), tf.int32)
    return tf.math.unsorted_segment_max(outside, rows, batch_size) > 0


def _assert_good(bad, example_names):
    """An op that fails naming the first bad record of the batch."""
    names = example_names
    if names is None:
        names = tf.strings.join(
            ["batch position ", tf.strings.as_string(tf.range(tf.shape(bad)[0]))]
        )
    first_bad = tf.gather(names, tf.argmax(tf.cast(bad, tf.int32)))
    return tf.debugging.Assert(
        tf.logical_not(tf.reduce_any(bad)),
        [record_checks.BAD_RECORD_MARKER, first_bad],
        summarize=1,
    )


def _id_features(id_feature):
    # Optional in the parse, so that a missing id is reported with the record's name.
    return {id_feature: tf.io.FixedLenFeature([], tf.string, default_value="")}


# The rating lists of a 2019 Segments record, one entry per rating.
SEGMENT_LISTS = (
    ("segment_start_times", tf.int64),
    ("segment_labels", tf.int64),
    ("segment_scores", tf.float32),
)


class BaseReader:
    """Contract of every reader."""

    def prepare_serialized_examples(self, serialized_batch, example_names=None):
        raise NotImplementedError()


class YT8MFrameFeatureReader(BaseReader):
    """Reads frame-level `SequenceExample`s: one uint8 byte string per frame and feature."""

    def __init__(
        self,
        num_classes=3862,
        feature_sizes=(1024, 128),
        feature_names=("rgb", "audio"),
        max_frames=300,
        id_feature="id",
        frame_selection=None,
        is_training=False,
        segment_size=0,
    ):
        """With a `frame_selection` (frame_selection.FrameSelection), only the
        frames it picks are decoded: `video_matrix` is then the student's input
        [B, k, D] and `num_frames` the student's frame count.

        With `segment_size` > 0, each record (2019 format: context
        `segment_start_times`, `segment_labels`, `segment_scores`, one entry per
        rating) gives its rated segments instead of itself: the frames [start,
        start + segment_size) at the start of a max_frames input (the rest 0),
        `video_ids` "<id>:<start>", `labels` the rated scores and
        `label_weights` 1 on each rated (segment, class), 0 elsewhere. A batch of
        records gives a batch of all their segments (the pipeline re-batches
        them). A start past the frames read, or lists of unequal length, make
        the record bad."""
        self.feature_names, self.feature_sizes = yt8m_format.parse_feature_list(
            feature_names, feature_sizes
        )
        if max_frames <= 0:
            raise UserError(f"max_frames must be positive, got {max_frames}")
        self.num_classes = num_classes
        self.max_frames = max_frames
        self.id_feature = id_feature
        self.frame_selection = frame_selection
        self.is_training = is_training
        if segment_size < 0 or segment_size > max_frames:
            raise UserError(f"--segment_size={segment_size} must be in 1..{max_frames}")
        self.segment_size = segment_size
        self._rating_lists = ()  # context lists parsed with the rest and passed on

    def _context_features(self):
        return dict(
            _id_features(self.id_feature),
            labels=tf.io.VarLenFeature(tf.int64),
            **{name: tf.io.VarLenFeature(dtype) for name, dtype in self._rating_lists},
        )

    def _bad_context(self, context):
        """[B] bool: no id, or a label outside the classes."""
        ids = context[self.id_feature]
        bad = tf.equal(ids, "")
        return bad | _labels_out_of_range(context["labels"], self.num_classes, tf.shape(ids)[0])

    def _parsed_batch(self, serialized_batch, example_names):
        """The general path: the stock parser, every frame split into a string."""
        sequence_features = {
            name: tf.io.FixedLenSequenceFeature([], dtype=tf.string) for name in self.feature_names
        }
        context, sequences, lengths = tf.io.parse_sequence_example(
            serialized_batch,
            context_features=self._context_features(),
            sequence_features=sequence_features,
            example_names=example_names,
        )
        first = lengths[self.feature_names[0]]
        bad = self._bad_context(context) | tf.equal(first, 0)
        for name, size in zip(self.feature_names, self.feature_sizes, strict=True):
            frames = sequences[name]
            valid = tf.sequence_mask(lengths[name], tf.shape(frames)[1])
            wrong_size = valid & tf.not_equal(tf.strings.length(frames), size)
            bad |= tf.reduce_any(wrong_size, axis=1) | tf.not_equal(lengths[name], first)

        def frame_codes(name, size, indices):
            frames = sequences[name]
            if indices is None:
                frames = frames[:, : self.max_frames]
            else:
                frames = tf.gather(frames, indices, batch_dims=1)
            return tf.io.decode_raw(frames, tf.uint8, fixed_length=size)

        return self._batch(context, first, bad, example_names, frame_codes, sliced=False)

    def _sliced_batch(self, serialized_batch, example_names, layout, every_frame=None):
        """The fast path for canonical records: only the selected frames are copied,
        or with `every_frame` ({name: codes} of record_slicing.all_frames) the
        first max_frames frames, already copied."""
        context = tf.io.parse_example(
            record_slicing.context_examples(serialized_batch, layout),
            self._context_features(),
            example_names=example_names,
        )

        def frame_codes(name, size, indices):
            if every_frame is not None:
                return every_frame[name]
            return record_slicing.slice_frames(serialized_batch, layout, name, size, indices)

        first = layout.counts[self.feature_names[0]]
        bad = self._bad_context(context)
        return self._batch(context, first, bad, example_names, frame_codes, sliced=True)

    def _batch(self, context, lengths, bad, example_names, frame_codes, sliced):
        """The output dict, once no record of the batch is `bad`; `sliced` says
        which path made it.

        `frame_codes(name, size, indices)` gives the uint8 codes [B, T, size]
        of the frames `indices` [B, k], or of the first max_frames frames for
        indices None. Concatenation and padding happen on the codes, so the
        float tensor is written once; padded frames are exactly 0 (dequantising
        a 0 code would give -2).
        """
        with tf.control_dependencies([_assert_good(bad, example_names)]):
            video_ids = tf.identity(context[self.id_feature])
            num_frames = tf.minimum(tf.cast(lengths, tf.int32), self.max_frames)
            indices, num_steps = None, self.max_frames
            if self.frame_selection is not None:
                indices, num_frames = self.frame_selection.indices(
                    num_frames, self.is_training, video_ids
                )
                num_steps = self.frame_selection.frame_budget
            codes = tf.concat(
                [
                    frame_codes(name, size, indices)
                    for name, size in zip(self.feature_names, self.feature_sizes, strict=True)
                ],
                axis=2,
            )
            codes = tf.pad(codes, [[0, 0], [0, num_steps - tf.shape(codes)[1]], [0, 0]])
            mask = tf.sequence_mask(num_frames, num_steps, dtype=tf.float32)[:, :, None]
            values = yt8m_format.dequantize_codes(codes) * mask
            return {
                "video_ids": video_ids,
                "video_matrix": tf.ensure_shape(values, [None, num_steps, sum(self.feature_sizes)]),
                "labels": _dense_labels(context["labels"], self.num_classes),
                "num_frames": num_frames,
                "decoded_by_slicing": tf.fill(tf.shape(video_ids), sliced),
                **{name: context[name] for name, _ in self._rating_lists},
            }

    def _every_frame_batch(self, serialized_batch, example_names):
        """Every frame (up to max_frames) of canonical records copied at once
        (record_slicing.all_frames); a batch with any record in another layout
        goes the general way."""
        layout = record_slicing.locate(
            serialized_batch, self.feature_names, self.feature_sizes, check_headers=False
        )
        canonical, every_frame = layout.canonical, {}
        for name, size in zip(self.feature_names, self.feature_sizes, strict=True):
            every_frame[name], headers_ok = record_slicing.all_frames(
                serialized_batch, layout, name, size, self.max_frames
            )
            canonical &= headers_ok
        return tf.cond(
            tf.reduce_all(canonical),
            lambda: self._sliced_batch(serialized_batch, example_names, layout, every_frame),
            lambda: self._parsed_batch(serialized_batch, example_names),
        )

    def _segment_batch(self, serialized_batch, example_names):
        """The rated segments of a batch of records (see __init__)."""
        # The whole videos, their rating lists parsed with their context.
        whole = copy.copy(self)
        whole.frame_selection, whole.segment_size = None, 0
        whole._rating_lists = SEGMENT_LISTS
        videos = whole._every_frame_batch(serialized_batch, example_names)
        ratings = {name: videos[name] for name, _ in SEGMENT_LISTS}
        records = tf.shape(videos["video_ids"])[0]
        starts, classes, scores = (ratings[name] for name, _ in SEGMENT_LISTS)
        per_record = [
            tf.math.bincount(tf.cast(values.indices[:, 0], tf.int32), minlength=records)
            for values in (starts, classes, scores)
        ]
        unequal = tf.not_equal(per_record[0], per_record[1]) | tf.not_equal(
            per_record[0], per_record[2]
        )
        with tf.control_dependencies([_assert_good(unequal, example_names)]):
            # Paired entry by entry only once the lists are known to be of one length.
            rows, start, label, score = (
                tf.identity(values)
                for values in (starts.indices[:, 0], starts.values, classes.values, scores.values)
            )
        wrong = (start < 0) | (start >= tf.cast(tf.gather(videos["num_frames"], rows), tf.int64))
        wrong |= (label < 0) | (label >= self.num_classes)
        bad = tf.math.unsorted_segment_max(tf.cast(wrong, tf.int32), rows, records) > 0
        with tf.control_dependencies([_assert_good(bad, example_names)]):
            # One segment per (record, start); its ratings scattered into its rows.
            keys, entry_segment = tf.unique(rows * self.max_frames + start)
        segment_rows, segment_starts = keys // self.max_frames, keys % self.max_frames
        rated = tf.stack([tf.cast(entry_segment, tf.int64), label], axis=1)
        shape = tf.stack([tf.size(keys, out_type=tf.int64), self.num_classes])
        zeros = tf.zeros(tf.cast(shape, tf.int32), tf.float32)
        labels = tf.tensor_scatter_nd_max(zeros, rated, score)
        weights = tf.tensor_scatter_nd_max(zeros, rated, tf.ones_like(score))
        offsets = tf.range(self.segment_size, dtype=tf.int64)
        frame_indices = tf.minimum(segment_starts[:, None] + offsets, self.max_frames - 1)
        frames = tf.gather(
            tf.gather(videos["video_matrix"], segment_rows), frame_indices, batch_dims=1
        )
        num_frames = tf.cast(tf.gather(videos["num_frames"], segment_rows), tf.int64)
        num_frames = tf.cast(
            tf.clip_by_value(num_frames - segment_starts, 0, self.segment_size), tf.int32
        )
        frames *= tf.sequence_mask(num_frames, self.segment_size, dtype=frames.dtype)[:, :, None]
        matrix = tf.pad(frames, [[0, 0], [0, self.max_frames - self.segment_size], [0, 0]])
        ids = tf.strings.join(
            [tf.gather(videos["video_ids"], segment_rows), tf.strings.as_string(segment_starts)],
            separator=":",
        )
        if self.frame_selection is not None:
            matrix, num_frames = select_frames(
                matrix, num_frames, self.frame_selection, segments=True
            )
        return {
            "video_ids": ids,
            "segment_starts": segment_starts,
            "video_matrix": tf.ensure_shape(
                matrix, [None, matrix.shape[1], sum(self.feature_sizes)]
            ),
            "labels": labels,
            "label_weights": weights,
            "num_frames": num_frames,
            "decoded_by_slicing": tf.zeros_like(num_frames, tf.bool),
        }

    def prepare_serialized_examples(self, serialized_batch, example_names=None):
        if self.segment_size:
            return self._segment_batch(serialized_batch, example_names)
        if self.frame_selection is None:
            return self._every_frame_batch(serialized_batch, example_names)
        # A batch with any record in another layout goes the general way (which
        # also names bad records).
        layout = record_slicing.locate(serialized_batch, self.feature_names, self.feature_sizes)
        return tf.cond(
            tf.reduce_all(layout.canonical),
            lambda: self._sliced_batch(serialized_batch, example_names, layout),
            lambda: self._parsed_batch(serialized_batch, example_names),
        )


class YT8MAggregatedFeatureReader(BaseReader):
    """Reads video-level `Example`s with float features such as `mean_rgb`, `mean_audio`.

    A feature name without the `mean_` prefix (the frame-level spelling, e.g.
    `rgb`) is read from `mean_<name>`, so one --feature_names flag serves both.
    """

    def __init__(
        self,
        num_classes=3862,
        feature_sizes=(1024, 128),
        feature_names=("mean_rgb", "mean_audio"),
        id_feature="id",
    ):
        names, self.feature_sizes = yt8m_format.parse_feature_list(feature_names, feature_sizes)
        self.feature_names = [
            name if name.startswith("mean_") else f"mean_{name}" for name in names
        ]
        self.num_classes = num_classes
        self.id_feature = id_feature

    def prepare_serialized_examples(self, serialized_batch, example_names=None):
        feature_map = dict(_id_features(self.id_feature), labels=tf.io.VarLenFeature(tf.int64))
        for name, size in zip(self.feature_names, self.feature_sizes, strict=True):
            feature_map[name] = tf.io.FixedLenFeature([size], tf.float32)
        parsed = tf.io.parse_example(serialized_batch, feature_map, example_names=example_names)
        video_matrix = tf.concat([parsed[name] for name in self.feature_names], axis=1)
        ids = parsed[self.id_feature]
        bad = tf.equal(ids, "") | tf.reduce_any(~tf.math.is_finite(video_matrix), axis=1)
        bad |= _labels_out_of_range(parsed["labels"], self.num_classes, tf.shape(ids)[0])
        with tf.control_dependencies([_assert_good(bad, example_names)]):
            return {
                "video_ids": tf.identity(ids),
                "video_matrix": tf.identity(video_matrix),
                "labels": _dense_labels(parsed["labels"], self.num_classes),
                "num_frames": tf.ones(tf.shape(ids), dtype=tf.int32),
            }


def make_reader(
    frame_features,
    dataset_version="2018",
    num_classes=None,
    feature_names="rgb, audio",
    feature_sizes="1024, 128",
    max_frames=300,
    frame_selection=None,
    is_training=False,
    segment_size=0,
):
    """Builds the reader the flags describe (see YT8MFrameFeatureReader for
    `frame_selection` and `segment_size`)."""
    id_feature, num_classes = yt8m_format.dataset_version_info(dataset_version, num_classes)
    if frame_features:
        return YT8MFrameFeatureReader(
            num_classes=num_classes,
            feature_sizes=feature_sizes,
            feature_names=feature_names,
            max_frames=max_frames,
            id_feature=id_feature,
            frame_selection=frame_selection,
            is_training=is_training,
            segment_size=segment_size,
        )
    if segment_size:
        raise UserError("--segment_labels needs frame-level records (--frame_features=True)")
    return YT8MAggregatedFeatureReader(
        num_classes=num_classes,
        feature_sizes=feature_sizes,
        feature_names=feature_names,
        id_feature=id_feature,
    )


def match_files(data_pattern):
    """Expands a glob (or several, comma-separated) to a sorted list of files.

    Raises a UserError naming the pattern when nothing matches, or naming a match
    that is a directory.
    """
    patterns = [pattern.strip() for pattern in data_pattern.split(",") if pattern.strip()]
    files = sorted({path for pattern in patterns for path in tf.io.gfile.glob(pattern)})
    if not files:
        raise UserError(
            f"No files found matching data pattern {data_pattern!r}; check the path, or put "
            "YouTube-8M TFRecords there (see docs/data.md)"
        )
    for path in files:
        if tf.io.gfile.isdir(path):
            raise UserError(
                f"{path} (matched by {data_pattern!r}) is a directory, not a TFRecord file; "
                "give a pattern of files such as 'yt8m/train*.tfrecord'"
            )
    return files


# A record's key: file number * RECORD_KEY_BASE + record index in the file. Integer
# keys are cheap to carry per record; names are made per batch, for error messages.
RECORD_KEY_BASE = 2**40


def _keyed_records(path, file_number):
    return tf.data.TFRecordDataset(path).enumerate(start=file_number * RECORD_KEY_BASE)


def _checked_keyed_records(reader, bad_records):
    """Like _keyed_records, but bad records are counted in `bad_records`, logged and
    left out."""
    signature = (tf.TensorSpec([], tf.int64), tf.TensorSpec([], tf.string))
    return lambda path, file_number: tf.data.Dataset.from_generator(
        lambda file, number: record_checks.checked_records(
            file, reader, bad_records, number * RECORD_KEY_BASE
        ),
        output_signature=signature,
        args=(path, file_number),
    )


def record_names(files, keys):
    """Names "<file>, record <index>" of a batch of record keys."""
    file_names = tf.gather(tf.constant(files), keys // RECORD_KEY_BASE)
    indexes = tf.strings.as_string(keys % RECORD_KEY_BASE)
    return tf.strings.join([file_names, indexes], separator=record_checks.RECORD_NAME_SEPARATOR)


def get_input_data_tensors(
    reader,
    data_pattern,
    batch_size=settings.InputSettings.batch_size,
    num_epochs=None,
    shuffle=True,
    num_readers=settings.InputSettings.num_readers,
    shuffle_buffer=None,
    seed=None,
    skip_bad_records=settings.InputSettings.skip_bad_records,
    num_parallel_calls=settings.InputSettings.num_parallel_calls,
    deterministic=False,
    drop_remainder=False,
    bad_records=None,
):
    """The input pipeline of every binary: files -> records -> parsed batches.

    Training reads files in parallel, shuffled, for `num_epochs` (None: forever);
    with `deterministic` (and a `seed`), in the same order in every run; with
    `drop_remainder`, every batch has `batch_size` videos (a static shape).
    Evaluation (`shuffle=False`) reads every record exactly once per epoch in a
    fixed, repeatable order. With `skip_bad_records`, the records left out are
    counted in `bad_records` (a record_checks.BadRecordCounter the caller owns, one
    per pipeline). Returns the dict of `reader.prepare_serialized_examples`,
    whose `get_next` raises `tf.errors.OutOfRangeError` when the epochs are done.
    """
    files = match_files(data_pattern)
    dataset = tf.data.Dataset.from_tensor_slices((files, tf.range(len(files), dtype=tf.int64)))
    if shuffle:
        dataset = dataset.shuffle(len(files), seed=seed, reshuffle_each_iteration=True)
    # The pipeline's functions are plain TensorFlow ops: skipping AutoGraph's
    # source transformation saves seconds at every start of every binary.
    plain = tf.autograph.experimental.do_not_convert
    dataset = dataset.interleave(
        plain(
            _checked_keyed_records(reader, bad_records or record_checks.BadRecordCounter())
            if skip_bad_records
            else _keyed_records
        ),
        cycle_length=max(1, min(num_readers, len(files))),
        num_parallel_calls=tf.data.AUTOTUNE,
        deterministic=deterministic or not shuffle,
    )
    if shuffle:
        dataset = dataset.shuffle(shuffle_buffer or max(4 * batch_size, 256), seed=seed)
    dataset = dataset.repeat(num_epochs)
    dataset = dataset.batch(batch_size, drop_remainder=drop_remainder)
    dataset = dataset.map(
        plain(
            lambda keys, records: reader.prepare_serialized_examples(
                records, record_names(files, keys)
            )
        ),
        num_parallel_calls=num_parallel_calls or tf.data.AUTOTUNE,
        deterministic=deterministic or not shuffle,
    )
    if getattr(reader, "segment_size", 0):
        # A batch of records gave all their segments: batches of segments instead.
        dataset = dataset.unbatch().batch(batch_size, drop_remainder=drop_remainder)
    dataset = dataset.prefetch(tf.data.AUTOTUNE)
    return tf.compat.v1.data.make_one_shot_iterator(dataset).get_next()


def run_to_end(session, fetches, reader, data_pattern):
    """Yields `session.run(fetches)` until the input is exhausted; an error from a
    bad record becomes a UserError naming it."""
    with record_checks.explained_input_errors(reader, match_files(data_pattern)):
        while True:
            try:
                values = session.run(fetches)
            except tf.errors.OutOfRangeError:
                return
            yield values
