"""How far a training run is: its epoch, and when it will end, for the log line.

The end is known from --max_steps, or from --num_epochs and the number of
videos in the training data. Counting those would mean reading every record's
header: at the full dataset, millions of reads and most of its bytes before
the first step. So the chief reads at most `SAMPLE_BYTES` from the head of the
files, in one read per file: files read whole are counted exactly, the rest is
estimated from their sizes and the mean record size seen, and the log marks an
estimate with "~". Only the log uses it: --num_epochs itself ends the run when
the reader has made that many passes.
"""

import time

import tensorflow as tf
from absl import logging

SAMPLE_BYTES = 4 << 20
SAMPLED_FILES = 8  # heads read, from files spread over the list
# A file opened for reading fills a buffer of this size first: no head is smaller.
_SMALLEST_READ = 512 << 10
_HEADER_BYTES = 12  # length (8) and its CRC (4); the data's CRC (4) follows the data


def _record_sizes(head):
    """Sizes (framing included) of the records whose length header lies in `head`,
    the start of a TFRecord file; the last may reach past its end."""
    sizes, position = [], 0
    while position + _HEADER_BYTES <= len(head):
        size = _HEADER_BYTES + int.from_bytes(head[position : position + 8], "little") + 4
        sizes.append(size)
        position += size
    return sizes, position


def video_count(files, sample_bytes=SAMPLE_BYTES, sampled_files=SAMPLED_FILES):
    """(videos in `files`, exact?): counted when the files hold at most
    `sample_bytes`. Otherwise the heads of up to `sampled_files` files spread over
    the list are read, `sample_bytes` in all, one read each, and the videos are
    estimated from the files' sizes and the mean size of the records whose
    headers the heads hold (None: no header in them)."""
    start = time.time()
    sizes = [tf.io.gfile.stat(name).length for name in files]
    if sum(sizes) <= sample_bytes:  # every file read whole: counted
        picked, head_bytes = range(len(files)), sample_bytes
    else:
        heads = max(min(sampled_files, len(files), sample_bytes // _SMALLEST_READ), 1)
        spread = max(heads - 1, 1)
        picked = sorted({round(i * (len(files) - 1) / spread) for i in range(heads)})
        head_bytes = max(sample_bytes // len(picked), _HEADER_BYTES)
    exact_videos = 0
    seen = []
    for index in picked:
        if not sizes[index]:
            continue
        with tf.io.gfile.GFile(files[index], "rb") as stream:
            head = stream.read(min(sizes[index], head_bytes))
        record_sizes, end = _record_sizes(head)
        seen += record_sizes
        if len(head) == sizes[index] and end == len(head):
            exact_videos += len(record_sizes)
            sizes[index] = 0  # counted
    unread_bytes = sum(sizes)
    exact = unread_bytes == 0
    if exact:
        videos = exact_videos
    elif seen:
        videos = exact_videos + round(unread_bytes * len(seen) / sum(seen))
    else:  # no record header within the sampled heads
        videos = None
    logging.info(
        "%s %s videos in %d files (%s; %.1f s)",
        "Counted" if exact else "Estimated",
        "an unknown number of" if videos is None else ("" if exact else "~") + str(videos),
        len(files),
        "every file read"
        if exact
        else f"{len(seen)} records seen in the heads of {len(picked)} files",
        time.time() - start,
    )
    return videos, exact


class Progress:
    """The epoch and the ETA of a run that started this process at `start_step`
    and ends at `end_step` (None: unknown); `videos` per epoch (None: unknown);
    `estimated`: `videos` is an estimate, and so is an end that comes from it
    (both then marked "~")."""

    def __init__(self, start_step, end_step, videos, batch_size, num_epochs, estimated=False):
        self.start_step, self.end_step = start_step, end_step
        self.videos, self.batch_size, self.num_epochs = videos, batch_size, num_epochs
        self.estimated = estimated
        self.end_estimated = False
        self.start_time = time.time()

    def text(self, step):
        """' Epoch: 1.35/3| ETA: 0:04:10' parts for the log line, or []."""
        parts = []
        about = "~" if self.estimated else ""
        if self.videos:
            epochs = (step - self.start_step) * self.batch_size / self.videos
            total = f"/{self.num_epochs}" if self.num_epochs else ""
            parts.append(f"Epoch: {about}{epochs:.2f}{total}")
        done = step - self.start_step
        about = "~" if self.end_estimated else ""
        if self.end_step and done > 0:
            seconds = (time.time() - self.start_time) / done * max(self.end_step - step, 0)
            parts.append(
                f"ETA: {about}{format_seconds(seconds)} (step {step} of {about}{self.end_step})"
            )
        return parts


def format_seconds(seconds):
    minutes, seconds = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{seconds:02d}"


def training_progress(training, batch_size, start_step, files, workers=1, drop_remainder=False):
    """The Progress of a training run with settings `training` (TrainingSettings)
    on `files`; the chief counts or estimates the videos when --num_epochs bounds it."""
    videos = end_step = None
    exact = True
    if training.num_epochs:
        videos, exact = video_count(files)
        if videos:
            examples = training.num_epochs * videos
            batches = examples // batch_size if drop_remainder else -(-examples // batch_size)
            end_step = start_step + workers * batches
    run_progress = Progress(
        start_step, end_step, videos, batch_size, training.num_epochs, not exact
    )
    run_progress.end_estimated = end_step is not None and not exact
    if training.max_steps and (not end_step or training.max_steps <= end_step):
        run_progress.end_step, run_progress.end_estimated = training.max_steps, False
    return run_progress
