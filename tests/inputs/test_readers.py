"""Readers: exact decoding, capping and padding, dataset versions, real shards."""

import glob
import os

import numpy as np
import pytest
import tensorflow as tf

from fewer_frames.inputs import readers, yt8m_format
from fewer_frames.system.errors import UserError
from testlib import dequantize, read_all_batches


def _frame_example(video_id, labels, rgb_codes, audio_codes, id_feature="id"):
    example = tf.train.SequenceExample()
    example.context.feature[id_feature].bytes_list.value.append(video_id)
    if labels is not None:
        example.context.feature["labels"].int64_list.value.extend(labels)
    for name, codes in (("rgb", rgb_codes), ("audio", audio_codes)):
        for frame in codes:
            feature = example.feature_lists.feature_list[name].feature.add()
            feature.bytes_list.value.append(frame.tobytes())
    return example.SerializeToString()


def _numpy_decode(rgb_codes, audio_codes, max_frames):
    """The SPEC's dequantisation, capping and zero padding, in numpy."""
    frames = np.concatenate([rgb_codes, audio_codes], axis=1)[:max_frames].astype(np.float64)
    values = frames * (4.0 / 255.0) + 4.0 / 512.0 - 2.0
    padded = np.zeros((max_frames, frames.shape[1]))
    padded[: len(values)] = values
    return padded, min(len(rgb_codes), max_frames)


def _write(path, records):
    with tf.io.TFRecordWriter(path) as writer:
        for record in records:
            writer.write(record)


@pytest.fixture()
def handmade_videos(tmp_path):
    """Videos of 1, 7, 30 and 45 frames (max_frames 30 caps the last), random codes."""
    rng = np.random.default_rng(7)
    videos = []
    for index, length in enumerate([1, 7, 30, 45]):
        rgb = rng.integers(0, 256, (length, 1024), dtype=np.uint8)
        audio = rng.integers(0, 256, (length, 128), dtype=np.uint8)
        labels = sorted(rng.choice(3862, size=index + 1, replace=False).tolist())
        videos.append((f"v{index:03d}".encode(), labels, rgb, audio))
    path = str(tmp_path / "train0.tfrecord")
    _write(path, [_frame_example(*video) for video in videos])
    return path, videos


def test_frame_reader_matches_numpy_decode_exactly(handmade_videos):
    path, videos = handmade_videos
    reader = readers.YT8MFrameFeatureReader(max_frames=30)
    batch = read_all_batches(
        readers.get_input_data_tensors(reader, path, batch_size=4, num_epochs=1, shuffle=False)
    )
    assert batch["video_matrix"].shape == (4, 30, 1152)
    assert batch["labels"].shape == (4, 3862)
    for row, (video_id, labels, rgb, audio) in enumerate(videos):
        expected, num_frames = _numpy_decode(rgb, audio, 30)
        assert batch["video_ids"][row] == video_id
        assert batch["num_frames"][row] == num_frames
        np.testing.assert_allclose(batch["video_matrix"][row], expected, rtol=0, atol=1e-6)
        assert np.all(batch["video_matrix"][row, num_frames:] == 0.0)
        assert sorted(np.flatnonzero(batch["labels"][row]).tolist()) == labels
    # Lengths 1, 7, 30 and 45 -> 30 sit in one batch.
    assert batch["num_frames"].tolist() == [1, 7, 30, 30]


def test_quantize_inverts_the_spec_formula():
    codes = np.arange(256, dtype=np.float64)
    np.testing.assert_array_equal(yt8m_format.quantize(dequantize(codes)), codes.astype(np.uint8))


def test_dequantize_codes_equals_the_float_formula_bit_for_bit():
    codes = tf.constant(np.arange(256, dtype=np.uint8)[None, :])
    in_one_op, formula = yt8m_format.dequantize_codes(codes), dequantize(tf.cast(codes, tf.float32))
    with tf.compat.v1.Session() as session:
        got, expected = session.run([in_one_op, formula])
    assert got.dtype == np.float32
    np.testing.assert_array_equal(got, expected)


def test_missing_labels_read_as_zeros_and_2017_id_key(tmp_path):
    rng = np.random.default_rng(1)
    rgb = rng.integers(0, 256, (3, 1024), dtype=np.uint8)
    audio = rng.integers(0, 256, (3, 128), dtype=np.uint8)
    path = str(tmp_path / "test0.tfrecord")
    _write(path, [_frame_example(b"abcdefghijk", None, rgb, audio, id_feature="video_id")])
    reader = readers.make_reader(True, dataset_version="2017")
    assert reader.num_classes == 4716 and reader.id_feature == "video_id"
    batch = read_all_batches(
        readers.get_input_data_tensors(reader, path, batch_size=2, num_epochs=1, shuffle=False)
    )
    assert batch["video_ids"].tolist() == [b"abcdefghijk"]
    assert batch["labels"].shape == (1, 4716) and batch["labels"].sum() == 0
    assert batch["num_frames"].tolist() == [3]


def test_num_classes_flag_overrides_version():
    reader = readers.make_reader(True, dataset_version="2018", num_classes=100)
    assert reader.num_classes == 100 and reader.id_feature == "id"
    with pytest.raises(ValueError, match="Unknown dataset version '2016'"):
        readers.make_reader(True, dataset_version="2016")


def test_no_matching_files_names_the_pattern(tmp_path):
    pattern = str(tmp_path / "nothing*.tfrecord")
    with pytest.raises(UserError, match="No files found matching data pattern"):
        readers.get_input_data_tensors(readers.YT8MFrameFeatureReader(), pattern)


def test_training_pipeline_shuffles_and_repeats(small_sample):
    sample_dir, manifest = small_sample
    reader = readers.make_reader(True)
    tensors = readers.get_input_data_tensors(
        reader, os.path.join(sample_dir, "train*.tfrecord"), batch_size=50, num_epochs=2, seed=3
    )
    batch = read_all_batches(tensors)
    ids, counts = np.unique(batch["video_ids"], return_counts=True)
    assert len(ids) == manifest["splits"]["train"]["videos"]
    assert set(counts.tolist()) == {2}
    in_order = read_all_batches(
        readers.get_input_data_tensors(
            reader,
            os.path.join(sample_dir, "train*.tfrecord"),
            batch_size=50,
            num_epochs=1,
            shuffle=False,
        )
    )
    assert batch["video_ids"][: len(ids)].tolist() != in_order["video_ids"].tolist()


def _protobuf_records(paths):
    """Direct protobuf parse: list of (id, sorted labels, mean_rgb)."""
    records = []
    for path in paths:
        for raw in tf.compat.v1.io.tf_record_iterator(path):
            features = tf.train.Example.FromString(raw).features.feature
            id_key = "id" if "id" in features else "video_id"
            records.append(
                (
                    features[id_key].bytes_list.value[0],
                    sorted(features["labels"].int64_list.value),
                    np.array(features["mean_rgb"].float_list.value, np.float32),
                )
            )
    return records


@pytest.mark.parametrize(
    "version, pattern, expected_count",
    [
        ("2018", "2018_video_level/validate*.tfrecord", 2950),
        ("2017", "2017_video_level/validate*.tfrecord", 1721),
        ("2017", "2017_video_level/test*.tfrecord", 163),
    ],
)
def test_real_video_level_shards(real_data_dir, version, pattern, expected_count):
    full_pattern = os.path.join(real_data_dir, pattern)
    reader = readers.make_reader(False, dataset_version=version)
    batch = read_all_batches(
        readers.get_input_data_tensors(
            reader, full_pattern, batch_size=500, num_epochs=1, shuffle=False
        )
    )
    expected = _protobuf_records(sorted(glob.glob(full_pattern)))
    assert len(expected) == expected_count
    assert batch["video_matrix"].shape == (expected_count, 1152)
    # The pipeline interleaves files; match records by id (ids are unique in these shards).
    row_of_id = {video_id: row for row, video_id in enumerate(batch["video_ids"].tolist())}
    assert len(row_of_id) == expected_count
    assert sorted(row_of_id) == sorted(record[0] for record in expected)
    for video_id, labels, mean_rgb in expected:
        row = row_of_id[video_id]
        assert np.flatnonzero(batch["labels"][row]).tolist() == labels
        np.testing.assert_array_equal(batch["video_matrix"][row, :1024], mean_rgb)
    assert batch["num_frames"].tolist() == [1] * expected_count
    if "test" in pattern:
        assert batch["labels"].sum() == 0
    else:
        assert batch["labels"].sum(axis=1).min() >= 1


@pytest.mark.parametrize(
    "rule", ["uniform", "random", "first", "middle", "last", "first_middle_last"]
)
def test_student_decode_equals_selecting_from_the_full_decode(small_sample, rule):
    from fewer_frames.inputs import frame_selection

    sample_dir, _ = small_sample
    pattern = os.path.join(sample_dir, "validate*.tfrecord")
    k = 0 if rule == "uniform" else 12  # the seed's stride for uniform, k=12 for the rest
    selection = frame_selection.FrameSelection(rule, every_n=10, num_student_frames=k)
    full = readers.get_input_data_tensors(
        readers.make_reader(True), pattern, batch_size=20, num_epochs=1, shuffle=False
    )
    selected = frame_selection.select_frames(
        full["video_matrix"], full["num_frames"], selection, video_ids=full["video_ids"]
    )
    student = readers.get_input_data_tensors(
        readers.make_reader(True, frame_selection=selection),
        pattern,
        batch_size=20,
        num_epochs=1,
        shuffle=False,
    )
    with tf.compat.v1.Session() as session:
        for _ in range(3):
            (expected_matrix, expected_frames), got = session.run([selected, student])
            assert got["video_matrix"].shape == (20, selection.frame_budget, 1152)
            np.testing.assert_array_equal(got["video_matrix"], expected_matrix)
            np.testing.assert_array_equal(got["num_frames"], expected_frames)
            # The sample's records are canonical: every one is cut out of its bytes.
            assert got["decoded_by_slicing"].all()
