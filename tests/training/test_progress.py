"""The number of training videos at start-up: counted where the files are small,
estimated from a few MB of their heads where they are not."""

import glob

import tensorflow as tf

from fewer_frames.training import progress


def _bytes_read():
    with open("/proc/self/io") as stream:
        return int(next(line for line in stream if line.startswith("rchar:")).split()[1])


def _write_records(path, sizes):
    with tf.io.TFRecordWriter(str(path)) as writer:
        for size in sizes:
            writer.write(b"x" * size)


def test_small_files_are_counted_exactly(tmp_path):
    _write_records(tmp_path / "a.tfrecord", [10, 2000, 0, 7])
    _write_records(tmp_path / "b.tfrecord", [])
    _write_records(tmp_path / "c.tfrecord", [300] * 5)
    files = sorted(glob.glob(str(tmp_path / "*.tfrecord")))
    assert progress.video_count(files) == (9, True)


def test_large_files_are_estimated_from_their_heads(small_sample):
    sample_dir, manifest = small_sample
    files = sorted(glob.glob(f"{sample_dir}/*.tfrecord"))  # 4 files of 60 videos, 14 MB each
    videos = sum(split["videos"] for split in manifest["splits"].values())
    before = _bytes_read()
    guess, exact = progress.video_count(files, sample_bytes=2 << 20)
    read = _bytes_read() - before
    assert not exact and abs(guess - videos) <= 0.15 * videos, guess
    assert read <= (2 << 20) + (64 << 10), read
    # A budget that holds every file: the exact count.
    assert progress.video_count(files, sample_bytes=1 << 30) == (videos, True)


def test_records_larger_than_the_heads_are_estimated_from_their_headers(tmp_path):
    _write_records(tmp_path / "a.tfrecord", [5000, 5000, 5000])
    _write_records(tmp_path / "b.tfrecord", [])
    files = sorted(glob.glob(str(tmp_path / "*.tfrecord")))
    assert progress.video_count(files, sample_bytes=1000) == (3, False)


def test_heads_without_a_record_leave_the_count_unknown(tmp_path):
    _write_records(tmp_path / "a.tfrecord", [])
    _write_records(tmp_path / "b.tfrecord", [600_000, 600_000])
    _write_records(tmp_path / "c.tfrecord", [])
    files = sorted(glob.glob(str(tmp_path / "*.tfrecord")))
    # Two heads (first and last file) in 1 MB: both files are empty.
    assert progress.video_count(files, sample_bytes=1 << 20) == (None, False)
