"""Cutting chosen frames straight out of serialized frame-level SequenceExamples.

The stock parser splits every frame of every feature into its own string, so
a reader that needs 30 of 300 frames would still pay for all 300. In the
canonical protobuf encoding (fields in number order, what every writer of
YouTube-8M emits) a feature list of frames of D bytes is a run of equal
records of `frame_header(D) + D` bytes each, so frame i starts at a fixed
offset. `locate` finds each feature list with a few byte reads per record and
proves the layout (every frame header is checked); `slice_frames` then copies
only the chosen frames. Records whose layout is anything else are flagged in
`Layout.canonical`, and the reader parses those batches the general way.

Wire format walked (tag bytes: field number << 3 | 2 for length-delimited):
  SequenceExample: 0x0A len context, 0x12 len feature_lists (the last field)
  FeatureLists:    entries 0x0A len { 0x0A len key, 0x12 len FeatureList }
  FeatureList:     frames 0x0A len Feature{ 0x0A len BytesList{ 0x0A len bytes } }
"""

import collections

import tensorflow as tf

# Feature lists walked per record; a record with more is parsed the general way.
MAX_FEATURE_LISTS = 4
_VARINT_BYTES = 5  # enough for any length below 2**35

Layout = collections.namedtuple("Layout", ["canonical", "context_end", "starts", "counts"])


def _varint(value):
    encoded = []
    while value >= 0x80:
        encoded.append(value & 0x7F | 0x80)
        value >>= 7
    return encoded + [value]


def frame_header(size):
    """The bytes before each frame of `size` bytes in a canonical FeatureList."""
    value = [0x0A] + _varint(size)
    bytes_list = [0x0A] + _varint(size + len(value))
    feature = [0x0A] + _varint(size + len(value) + len(bytes_list))
    return bytes(feature + bytes_list + value)


def frame_stride(size):
    return len(frame_header(size)) + size


def _lengths(records):
    return tf.cast(tf.strings.length(records), tf.int64)


def _substr(records, positions, count):
    """Bytes [positions, positions + count) of each record, shortened at its end.

    `records` [B] or [B, 1] broadcast against `positions`; positions are clamped
    into the record, since on a record of another layout they can be anything.
    """
    lengths = _lengths(records)
    positions = tf.clip_by_value(positions, 0, lengths)
    # Also gives the counts the broadcast shape of positions, as substr wants.
    counts = tf.minimum(tf.maximum(tf.cast(count, tf.int64), 0), lengths - positions)
    return tf.strings.substr(records, positions, counts)


def _read_bytes(records, positions, count):
    """[B] int64 positions -> [B, count] int64 bytes; zeros past a record's end."""
    raw = _substr(records, positions, count)
    return tf.cast(tf.io.decode_raw(raw, tf.uint8, fixed_length=count), tf.int64)


def _decode_varint(row_bytes, column):
    """The varint at `column` of byte rows [B, n] -> (value [B], its length [B])."""
    chunk = row_bytes[:, column : column + _VARINT_BYTES]
    continues = tf.cast(chunk >= 0x80, tf.int64)
    # A byte is part of the varint when every byte before it has the continuation bit.
    member = tf.math.cumprod(continues, axis=1, exclusive=True)
    shifts = tf.constant([7 * i for i in range(_VARINT_BYTES)], tf.int64)
    value = tf.reduce_sum(tf.bitwise.left_shift((chunk & 0x7F) * member, shifts), axis=1)
    return value, tf.reduce_sum(member, axis=1)


def _tagged_length(records, position, tag):
    """Reads `tag, varint` at `position`: (matches, length, position after it)."""
    row_bytes = _read_bytes(records, position, 1 + _VARINT_BYTES)
    length, size = _decode_varint(row_bytes, 1)
    return tf.equal(row_bytes[:, 0], tag), length, position + 1 + size


def _walk_feature_lists(records, begin, end, names):
    """Finds each named FeatureList's content between `begin` and `end`.

    Returns (well_formed [B], {name: (start, length, found)}).

    One entry per turn of a while loop (at most MAX_FEATURE_LISTS, ending when
    every record is walked): its ops are built once, not once per entry, which
    takes a third of a second off the build of every reader.
    """
    no_position = tf.zeros_like(begin)
    found = {name: (no_position, no_position, tf.zeros_like(begin, tf.bool)) for name in names}

    def more(turn, position, well_formed, found):
        return (turn < MAX_FEATURE_LISTS) & tf.reduce_any(position < end)

    def next_entry(turn, position, well_formed, found):
        present = position < end
        entry_ok, entry_length, key_position = _tagged_length(records, position, 0x0A)
        entry_end = key_position + entry_length
        key_ok, key_length, key_start = _tagged_length(records, key_position, 0x0A)
        key = _substr(records, key_start, key_length)
        value_ok, value_length, value_start = _tagged_length(records, key_start + key_length, 0x12)
        entry_ok &= key_ok & value_ok & tf.equal(value_start + value_length, entry_end)
        well_formed &= ~present | entry_ok
        updated = {}
        for name in names:
            hit = present & entry_ok & tf.equal(key, name)
            start, length, seen = found[name]
            updated[name] = (
                tf.where(hit, value_start, start),
                tf.where(hit, value_length, length),
                seen | hit,
            )
        return turn + 1, tf.where(present, entry_end, position), well_formed, updated

    _, position, well_formed, found = tf.while_loop(
        more, next_entry, (0, begin, tf.ones_like(begin, tf.bool), found)
    )
    return well_formed & tf.equal(position, end), found


def _headers_match(records, start, count, size):
    """[B] bool: all `count` frames from `start` carry the canonical header."""
    header = frame_header(size)
    frame = tf.range(tf.reduce_max(count), dtype=tf.int64)[None, :]
    positions = start[:, None] + frame * frame_stride(size)
    headers = _substr(records[:, None], positions, len(header))
    wanted = frame < count[:, None]
    return tf.reduce_all(tf.equal(headers, header) | ~wanted, axis=1)


def locate(records, feature_names, feature_sizes, check_headers=True):
    """Where each feature's frames are in a batch of serialized SequenceExamples.

    Returns a Layout: `canonical` [B] bool, true when the record is a context
    followed by feature lists holding every named feature as a run of
    canonical frames of its size, the same number of frames in each, at least
    one; `context_end` [B] int64 where the context field ends; `starts`
    {name: [B] int64} the byte offset of frame 0 and `counts` {name: [B]
    int64} the frame count (all meaningful only where canonical). Without
    `check_headers`, the frames' headers are left for the caller to check
    (`all_frames` does, on the bytes it copies anyway).
    """
    context_ok, context_length, after_tag = _tagged_length(
        records, tf.zeros_like(_lengths(records)), 0x0A
    )
    lists_ok, lists_length, lists_begin = _tagged_length(records, after_tag + context_length, 0x12)
    lists_end = lists_begin + lists_length
    canonical = context_ok & lists_ok
    canonical &= tf.equal(lists_end, _lengths(records))
    well_formed, found = _walk_feature_lists(records, lists_begin, lists_end, feature_names)
    canonical &= well_formed
    starts, counts = {}, {}
    for name, size in zip(feature_names, feature_sizes, strict=True):
        start, length, seen = found[name]
        stride = frame_stride(size)
        starts[name] = tf.where(canonical, start, 0)
        counts[name] = tf.where(canonical, length // stride, 0)
        canonical &= seen & tf.equal(length % stride, 0)
    first = counts[feature_names[0]]
    canonical &= first > 0
    for name, size in zip(feature_names, feature_sizes, strict=True):
        canonical &= tf.equal(counts[name], first)
        if check_headers:
            canonical &= _headers_match(records, starts[name], counts[name], size)
    return Layout(canonical, after_tag + context_length, starts, counts)


def all_frames(records, layout, name, size, max_frames):
    """(uint8 codes [B, max_frames, size] of the first max_frames frames of feature
    `name`, zeros past its count; [B] bool: their headers are all canonical).

    Every frame at once: one copy of the feature list's bytes per record, cut
    into frames by a reshape, instead of a string per frame. The frame headers
    come with the copy, so checking them costs a comparison. (Frames past
    max_frames are not copied, and their headers not checked: their bytes
    cannot reach the output.)
    """
    header = frame_header(size)
    stride = frame_stride(size)
    count = tf.minimum(layout.counts[name], max_frames)
    raw = _substr(records, layout.starts[name], count * stride)
    rows = tf.io.decode_raw(raw, tf.uint8, fixed_length=max_frames * stride)  # zero-padded
    rows = tf.reshape(rows, [-1, max_frames, stride])
    wanted = tf.range(max_frames, dtype=tf.int64)[None, :] < count[:, None]
    expected = tf.constant(list(header), tf.uint8)
    headers_ok = tf.reduce_all(tf.equal(rows[:, :, : len(header)], expected), axis=2)
    return rows[:, :, len(header) :], tf.reduce_all(headers_ok | ~wanted, axis=1)


def slice_frames(records, layout, name, size, indices):
    """uint8 codes [B, k, size] of frames `indices` [B, k] of feature `name`.

    Valid only for canonical records and indices below their frame count.
    """
    header_size = len(frame_header(size))
    positions = layout.starts[name][:, None] + header_size
    positions += tf.cast(indices, tf.int64) * frame_stride(size)
    frames = _substr(records[:, None], positions, size)
    return tf.io.decode_raw(frames, tf.uint8, fixed_length=size)


def context_examples(records, layout):
    """The records cut after their context: serialized Examples with the same
    features (field 1 in both protos), far cheaper to parse than whole records."""
    return _substr(records, tf.zeros_like(layout.context_end), layout.context_end)
