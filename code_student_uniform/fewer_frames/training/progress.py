"""How far a training run is: its epoch, and when it will end, for the log line.

The end is known from --max_steps, or from --num_epochs and the number of
videos in the training data. Videos are counted once per data pattern, by
walking each TFRecord file's record headers (8-byte length, 4-byte CRC, data,
4-byte CRC: a seek per record, no payload read), and cached beside the run in
`video_counts.json` with the files' sizes, so changed data is counted again.
"""

import os
import time

import tensorflow as tf
from absl import logging

from fewer_frames.run_dirs import run_files


def count_records(path):
    """Records in one TFRecord file, from their length headers."""
    count = position = 0
    with tf.io.gfile.GFile(path, "rb") as stream:
        size = stream.size()
        while position + 8 <= size:
            stream.seek(position)
            length = int.from_bytes(stream.read(8), "little")
            position += 8 + 4 + length + 4
            count += 1
    return count


def video_count(run_dir, data_pattern, files):
    """Videos in `files` (matched by `data_pattern`), cached in the run directory."""
    sizes = {name: tf.io.gfile.stat(name).length for name in files}
    cached = run_files.read_video_counts(run_dir)
    entry = cached.get(data_pattern)
    if entry and entry.get("sizes") == sizes:
        return entry["videos"]
    start = time.time()
    videos = sum(count_records(name) for name in files)
    logging.info(
        "Counted %d videos in %d files of %s (%.1f s; cached in %s)",
        videos,
        len(files),
        data_pattern,
        time.time() - start,
        os.path.join(run_dir, run_files.VIDEO_COUNTS_FILE),
    )
    cached[data_pattern] = {"videos": videos, "sizes": sizes}
    run_files.write_video_counts(run_dir, cached)
    return videos


class Progress:
    """The epoch and the ETA of a run that started this process at `start_step`
    and ends at `end_step` (None: unknown); `videos` per epoch (None: unknown)."""

    def __init__(self, start_step, end_step, videos, batch_size, num_epochs):
        self.start_step, self.end_step = start_step, end_step
        self.videos, self.batch_size, self.num_epochs = videos, batch_size, num_epochs
        self.start_time = time.time()

    def text(self, step):
        """' Epoch: 1.35/3| ETA: 0:04:10' parts for the log line, or []."""
        parts = []
        if self.videos:
            epochs = (step - self.start_step) * self.batch_size / self.videos
            total = f"/{self.num_epochs}" if self.num_epochs else ""
            parts.append(f"Epoch: {epochs:.2f}{total}")
        done = step - self.start_step
        if self.end_step and done > 0:
            seconds = (time.time() - self.start_time) / done * max(self.end_step - step, 0)
            parts.append(f"ETA: {format_seconds(seconds)} (step {step} of {self.end_step})")
        return parts


def format_seconds(seconds):
    minutes, seconds = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{seconds:02d}"


def training_progress(
    training, batch_size, start_step, run_dir, files, workers=1, drop_remainder=False
):
    """The Progress of a training run with settings `training` (TrainingSettings)
    on `files`; the chief counts (and caches) the videos when --num_epochs bounds it."""
    videos = end_step = None
    if training.num_epochs:
        videos = video_count(run_dir, training.train_data_pattern, files)
        examples = training.num_epochs * videos
        batches = examples // batch_size if drop_remainder else -(-examples // batch_size)
        end_step = start_step + workers * batches
    if training.max_steps:
        end_step = min(end_step, training.max_steps) if end_step else training.max_steps
    return Progress(start_step, end_step, videos, batch_size, training.num_epochs)
