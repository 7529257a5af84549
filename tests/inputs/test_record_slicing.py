"""Frame slicing: canonical layouts are found and cut exactly; any other valid
encoding is detected and read through the general parser with the same result."""

import numpy as np
import pytest
import tensorflow as tf

from fewer_frames.inputs import frame_selection, readers, record_slicing
from testlib import read_all_batches, run_session

SIZES = {"rgb": 1024, "audio": 128}


def _varint(value, padded=False):
    encoded = bytearray()
    while value >= 0x80:
        encoded.append(value & 0x7F | 0x80)
        value >>= 7
    if padded:  # a valid but non-minimal encoding: one redundant continuation byte
        return bytes(encoded) + bytes([value | 0x80, 0])
    return bytes(encoded) + bytes([value])


def _field(tag, payload, padded=False):
    return bytes([tag]) + _varint(len(payload), padded) + payload


def _context(video_id, labels):
    features = tf.train.Features()
    features.feature["id"].bytes_list.value.append(video_id)
    features.feature["labels"].int64_list.value.extend(labels)
    return features.SerializeToString(deterministic=True)


def _feature_list(frames, padded_frame=None):
    """A FeatureList of byte frames; `padded_frame` is encoded non-minimally."""
    return b"".join(
        _field(0x0A, _field(0x0A, _field(0x0A, frame)), padded=index == padded_frame)
        for index, frame in enumerate(frames)
    )


def _record(
    video, lists_first=False, padded_frame=None, extra_lists=0, trailing_field=False, reverse=False
):
    """A SequenceExample encoded by hand; the options give valid non-canonical forms."""
    video_id, labels, frames = video
    lists = dict(frames)
    for number in range(extra_lists):
        lists[f"extra{number}"] = [b"\x07" * 3] * 2
    entries = b"".join(
        _field(
            0x0A,
            _field(0x0A, name.encode())
            + _field(0x12, _feature_list(lists[name], padded_frame if name == "rgb" else None)),
        )
        for name in sorted(lists, reverse=reverse)
    )
    context, feature_lists = _field(0x0A, _context(video_id, labels)), _field(0x12, entries)
    record = feature_lists + context if lists_first else context + feature_lists
    return record + (_field(0x1A, b"unknown") if trailing_field else b"")


def _videos(count, seed=3):
    rng = np.random.default_rng(seed)
    videos = []
    for index in range(count):
        length = int(rng.integers(1, 40))
        frames = {
            name: [rng.integers(0, 256, size, dtype=np.uint8).tobytes() for _ in range(length)]
            for name, size in SIZES.items()
        }
        videos.append((f"video{index}".encode(), [index % 7, 100 + index], frames))
    return videos


def _locate(records, indices=None):
    """Runs locate on `records`; with `indices` [B, k], also the sliced codes per feature."""
    records = tf.constant(records)
    layout = record_slicing.locate(records, ["rgb", "audio"], [1024, 128])
    sliced = {}
    if indices is not None:
        sliced = {
            name: record_slicing.slice_frames(records, layout, name, size, tf.constant(indices))
            for name, size in SIZES.items()
        }
    with tf.compat.v1.Session() as session:
        return session.run((layout, sliced))


@pytest.mark.parametrize("size", [1, 127, 128, 1024, 16383, 16384, 40000])
def test_frame_header_is_the_protobuf_encoding(size):
    frames = tf.train.FeatureList()
    frames.feature.add().bytes_list.value.append(b"\x01" * size)
    serialized = frames.SerializeToString()
    assert serialized == record_slicing.frame_header(size) + b"\x01" * size
    assert record_slicing.frame_stride(size) == len(serialized)


def test_hand_encoder_matches_protobuf():
    video_id, labels, frames = _videos(1)[0]
    example = tf.train.SequenceExample()
    example.context.ParseFromString(_context(video_id, labels))
    for name in ("audio", "rgb"):
        for frame in frames[name]:
            example.feature_lists.feature_list[name].feature.add().bytes_list.value.append(frame)
    # Map entries in key order; writers may emit them in any order (see below).
    assert _record((video_id, labels, frames)) == example.SerializeToString(deterministic=True)


def test_canonical_records_are_located_and_sliced_exactly():
    videos = _videos(6)
    records = [_record(video, reverse=index % 2 == 1) for index, video in enumerate(videos)]
    lengths = [len(video[2]["rgb"]) for video in videos]
    rng = np.random.default_rng(0)
    indices = np.stack([rng.integers(0, length, 5) for length in lengths]).astype(np.int32)
    layout, codes = _locate(records, indices)
    assert layout.canonical.tolist() == [True] * 6
    for name in SIZES:
        assert layout.counts[name].tolist() == lengths
        for row, (_, _, frames) in enumerate(videos):
            for column, index in enumerate(indices[row]):
                assert codes[name][row, column].tobytes() == frames[name][index]


def test_other_encodings_are_not_taken_for_canonical():
    video = _videos(1)[0]
    video_id, labels, frames = video
    short_frame = dict(frames, rgb=[frames["rgb"][0][:1000]] + frames["rgb"][1:])
    first, second = frames["rgb"][0], frames["rgb"][1]
    uneven_frames = dict(frames, rgb=[first[:1023], second + b"x"] + frames["rgb"][2:])
    cases = {
        "canonical": (_record(video), True),
        "rgb list first": (_record(video, reverse=True), True),
        "one extra feature list": (_record(video, extra_lists=1), True),
        "two extra feature lists": (_record(video, extra_lists=2), True),
        "feature lists before the context": (_record(video, lists_first=True), False),
        "a frame length encoded in 3 bytes": (_record(video, padded_frame=0), False),
        "five feature lists": (_record(video, extra_lists=3), False),
        "a field after the feature lists": (_record(video, trailing_field=True), False),
        "a frame of 1000 bytes": (_record((video_id, labels, short_frame)), False),
        # The lengths add up to canonical frames: only the frame headers tell.
        "frames of 1023 and 1025 bytes": (_record((video_id, labels, uneven_frames)), False),
        "one frame more of rgb": (
            _record((video_id, labels, dict(frames, rgb=frames["rgb"] + frames["rgb"][:1]))),
            False,
        ),
        "no audio": (_record((video_id, labels, {"rgb": frames["rgb"]})), False),
        "no frames": (_record((video_id, labels, {"rgb": [], "audio": []})), False),
        "empty record": (b"", False),
        "not a proto": (b"\xff" * 50, False),
    }
    records = [record for record, _ in cases.values()]
    layout, _ = _locate(records)
    found = dict(zip(cases, layout.canonical.tolist(), strict=True))
    assert found == {name: expected for name, (_, expected) in cases.items()}
    # The full reader's way: headers checked on the bytes all_frames copies.
    unchecked = record_slicing.locate(
        tf.constant(records), ["rgb", "audio"], [1024, 128], check_headers=False
    )
    canonical = unchecked.canonical
    for name, size in SIZES.items():
        canonical &= record_slicing.all_frames(tf.constant(records), unchecked, name, size, 30)[1]
    found = dict(zip(cases, run_session(canonical).tolist(), strict=True))
    assert found == {name: expected for name, (_, expected) in cases.items()}


def _read(path, selection, batch_size):
    reader = readers.make_reader(True, max_frames=30, frame_selection=selection)
    return read_all_batches(
        readers.get_input_data_tensors(
            reader, path, batch_size=batch_size, num_epochs=1, shuffle=False
        )
    )


@pytest.mark.parametrize("rule", ["uniform", "random", "middle", "every frame"])
def test_student_reader_gives_the_same_batches_for_any_valid_encoding(tmp_path, rule):
    videos = _videos(9, seed=11)
    canonical = [_record(video, reverse=index % 2 == 1) for index, video in enumerate(videos)]
    # Batches of 3: the first all canonical, the others each with one other encoding.
    mixed = list(canonical)
    mixed[4] = _record(videos[4], lists_first=True)
    mixed[8] = _record(videos[8], padded_frame=0, trailing_field=True)
    outputs = []
    for name, records in (("canonical", canonical), ("mixed", mixed)):
        path = str(tmp_path / f"{name}.tfrecord")
        with tf.io.TFRecordWriter(path) as writer:
            for record in records:
                writer.write(record)
        selection = None  # the full reader: every frame up to max_frames
        if rule != "every frame":
            selection = frame_selection.FrameSelection(
                rule, every_n=4, num_student_frames=0 if rule == "uniform" else 6, max_frames=30
            )
        outputs.append(_read(path, selection, batch_size=3))
    # The canonical file goes the byte-slicing way; in the mixed one, only the
    # first batch (all canonical) does.
    assert outputs[0].pop("decoded_by_slicing").tolist() == [True] * 9
    assert outputs[1].pop("decoded_by_slicing").tolist() == [True] * 3 + [False] * 6
    for key in outputs[0]:
        np.testing.assert_array_equal(outputs[0][key], outputs[1][key])
    if rule == "every frame":  # every frame, as the protobuf holds it
        for row, (video_id, _, frames) in enumerate(videos):
            length = min(len(frames["rgb"]), 30)
            assert outputs[0]["video_ids"][row] == video_id
            assert outputs[0]["num_frames"][row] == length
            for index in range(length):
                codes = np.frombuffer(frames["rgb"][index] + frames["audio"][index], np.uint8)
                expected = codes * (4.0 / 255.0) + 4.0 / 512.0 - 2.0
                np.testing.assert_allclose(
                    outputs[0]["video_matrix"][row, index], expected, atol=1e-6
                )
            assert not outputs[0]["video_matrix"][row, length:].any()
    # And the uniform rule picks frames 0, n, 2n, ..., as many as the original's count.
    if rule == "uniform":
        for row, (video_id, labels, frames) in enumerate(videos):
            length = min(len(frames["rgb"]), 30)
            picked = list(range(0, length, 4))[: int(length / 30 * int(30 / 4))]
            assert outputs[0]["video_ids"][row] == video_id
            assert outputs[0]["num_frames"][row] == len(picked)
            assert sorted(np.flatnonzero(outputs[0]["labels"][row])) == labels
            for column, index in enumerate(picked):
                codes = np.frombuffer(frames["rgb"][index] + frames["audio"][index], np.uint8)
                expected = codes * (4.0 / 255.0) + 4.0 / 512.0 - 2.0
                np.testing.assert_allclose(
                    outputs[0]["video_matrix"][row, column], expected, atol=1e-6
                )
            assert np.all(outputs[0]["video_matrix"][row, len(picked) :] == 0)
