"""Writes a small, deterministic, learnable sample of frame-level YouTube-8M data.

The files have the exact YouTube-8M frame-level format: one `SequenceExample`
per video with context `id` (`video_id` for --dataset_version=2017) and
`labels`, and feature lists `rgb` (1024 uint8 per frame) and `audio` (128 uint8
per frame). Splits: train*, validate* and test* (test records carry no labels).

How the content is made, so that a model can learn it and a teacher that sees
every frame has an edge over a student that sees every n-th frame:
- a few "active" classes, spread over the full id range, each with its own
  random rgb and audio pattern; label frequencies fall off with class rank;
- every frame is a per-video background plus noise; a label adds its class
  pattern to the frames where it happens: "global" classes in every frame,
  "burst" classes only in one or two short bursts of a few frames, which
  a sparse sample of frames often misses;
- lengths vary: a few videos of 1-10 frames, most of 100-300, some above 300
  (the readers cap them at 300).
With --segments it also writes segments_{train,validate,test}0000.tfrecord in the
2019 Segments format: each video's context adds `segment_start_times`,
`segment_labels` and `segment_scores` (test: none), rating 5-frame segments
(starts at multiples of 5) of its classes: 1 where the class happens in the
segment (everywhere for a global class, only in its bursts for a burst class),
0 elsewhere, and a few 0 ratings of classes the video does not have.
The same flags give the same bytes on every run.
"""

import json
import os
import sys

import numpy as np
import tensorflow as tf
from absl import app, flags, logging

import command_line
import runtime
import utils

command_line.define("data")
FLAGS = flags.FLAGS
flags.DEFINE_string("output_dir", "yt8m", "Folder to write the TFRecords into.")
flags.DEFINE_integer("seed", 2019, "Seed of everything random in the sample.")
flags.DEFINE_integer("num_active_classes", 24, "How many classes occur in the sample.")
flags.DEFINE_integer("num_train_files", 4, "Number of train*.tfrecord files.")
flags.DEFINE_integer("num_validate_files", 2, "Number of validate*.tfrecord files.")
flags.DEFINE_integer("num_test_files", 1, "Number of test*.tfrecord files (no labels).")
flags.DEFINE_integer("videos_per_file", 200, "Videos in each file.")
flags.DEFINE_integer("max_video_frames", 360, "Longest video written (above 300 tests the cap).")
flags.DEFINE_bool("segments", False, "Also write segment-rated records (2019 format).")

RGB_SIZE = 1024
AUDIO_SIZE = 128
NOISE_STD = 0.45
BACKGROUND_STD = 0.25
PATTERN_STD = 0.35
ID_ALPHABET = np.array(list("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_"))


class SampleSpec:
    """The class patterns shared by every split of one sample."""

    def __init__(self, seed, num_classes, num_active_classes):
        rng = np.random.default_rng([seed, 0])
        self.classes = np.sort(rng.choice(num_classes, size=num_active_classes, replace=False))
        # Shuffled so that frequency rank is unrelated to class id.
        self.rank_order = rng.permutation(num_active_classes)
        weights = 1.0 / (np.arange(num_active_classes) + 1.0) ** 0.7
        self.frequency = np.empty(num_active_classes)
        self.frequency[self.rank_order] = weights / weights.sum()
        # Alternate global/burst along the frequency ranking so both kinds are common.
        self.is_burst = np.zeros(num_active_classes, bool)
        self.is_burst[self.rank_order[1::2]] = True
        self.rgb_patterns = rng.normal(0, PATTERN_STD, (num_active_classes, RGB_SIZE))
        self.audio_patterns = rng.normal(0, PATTERN_STD, (num_active_classes, AUDIO_SIZE))


def _video_length(rng, max_video_frames):
    draw = rng.random()
    if draw < 0.04:
        return int(rng.integers(1, 11))
    if draw < 0.14:
        return int(rng.integers(301, max(302, max_video_frames + 1)))
    return int(rng.integers(100, 301))


def _active_frames(rng, num_frames, is_burst):
    """Frames in which one label happens: all of them, or one or two short bursts."""
    mask = np.zeros(num_frames, bool)
    if not is_burst:
        mask[:] = True
        return mask
    for _ in range(int(rng.integers(1, 3))):
        length = int(rng.integers(2, 7))
        start = int(rng.integers(0, max(1, num_frames - length + 1)))
        mask[start : start + length] = True
    return mask


def _make_video(rng, spec, max_video_frames, active=None):
    """Returns (label class ids, rgb codes [T, 1024] uint8, audio codes [T, 128] uint8);
    fills `active` (a dict, when given) with {class id: the frames it happens in}."""
    num_frames = _video_length(rng, max_video_frames)
    num_labels = int(rng.choice([1, 2, 3, 4, 5], p=[0.3, 0.3, 0.2, 0.12, 0.08]))
    picked = rng.choice(len(spec.classes), size=num_labels, replace=False, p=spec.frequency)
    rgb = rng.normal(0, BACKGROUND_STD, RGB_SIZE) + rng.normal(0, NOISE_STD, (num_frames, RGB_SIZE))
    audio = rng.normal(0, BACKGROUND_STD, AUDIO_SIZE) + rng.normal(
        0, NOISE_STD, (num_frames, AUDIO_SIZE)
    )
    for index in picked:
        frames = _active_frames(rng, num_frames, spec.is_burst[index])
        strength = rng.uniform(0.6, 1.4)
        rgb[frames] += strength * spec.rgb_patterns[index]
        audio[frames] += strength * spec.audio_patterns[index]
        if active is not None:
            active[int(spec.classes[index])] = frames
    labels = np.sort(spec.classes[picked])
    return labels, utils.quantize(rgb), utils.quantize(audio)


def _video_id(rng, version):
    length = 11 if version == "2017" else 4
    return "".join(rng.choice(ID_ALPHABET, size=length)).encode()


SEGMENT_SIZE = 5


def _segment_ratings(rng, spec, active, num_frames):
    """[(start, class, score)] of one video: per class of the video up to 3 segments
    where it happens (1) and 2 where it does not (0), and 0 ratings of 2 classes
    it does not have; starts are multiples of SEGMENT_SIZE within the frames."""
    starts = np.arange(0, min(num_frames, 300), SEGMENT_SIZE)
    ratings = []
    for label, frames in sorted(active.items()):
        present = np.array([frames[s : s + SEGMENT_SIZE].any() for s in starts])
        for wanted, count, score in ((present, 3, 1.0), (~present, 2, 0.0)):
            chosen = rng.permutation(starts[wanted])[:count]
            ratings += [(int(start), label, score) for start in chosen]
    absent = [int(c) for c in spec.classes if int(c) not in active]
    for label in rng.choice(absent, size=min(2, len(absent)), replace=False):
        ratings.append((int(rng.choice(starts)), int(label), 0.0))
    return sorted(ratings)


def _sequence_example(video_id, labels, rgb, audio, id_feature, ratings=None):
    example = tf.train.SequenceExample()
    example.context.feature[id_feature].bytes_list.value.append(video_id)
    if labels is not None:
        example.context.feature["labels"].int64_list.value.extend(int(x) for x in labels)
    if ratings:
        context = example.context.feature
        context["segment_start_times"].int64_list.value.extend(r[0] for r in ratings)
        context["segment_labels"].int64_list.value.extend(r[1] for r in ratings)
        context["segment_scores"].float_list.value.extend(r[2] for r in ratings)
    for name, codes in (("rgb", rgb), ("audio", audio)):
        feature_list = example.feature_lists.feature_list[name]
        for frame in codes:
            feature_list.feature.add().bytes_list.value.append(frame.tobytes())
    return example.SerializeToString(deterministic=True)


SPLITS = {
    "train": 1,
    "validate": 2,
    "test": 3,
    "segments_train": 4,
    "segments_validate": 5,
    "segments_test": 6,
}


def write_split(output_dir, split, num_files, spec, version, seed, videos_per_file, max_frames):
    """Writes one split; returns the number of videos and frames written."""
    id_feature, _ = utils.dataset_version_info(version)
    split_index = SPLITS[split]
    rated = split.startswith("segments_") and not split.endswith("test")
    num_videos = num_frames = 0
    for file_index in range(num_files):
        rng = np.random.default_rng([seed, split_index, file_index])
        path = os.path.join(output_dir, f"{split}{file_index:04d}.tfrecord")
        temporary = path + ".tmp"
        with tf.io.TFRecordWriter(temporary) as writer:
            for _ in range(videos_per_file):
                active = {}
                labels, rgb, audio = _make_video(rng, spec, max_frames, active)
                video_id = _video_id(rng, version)
                kept_labels = None if split.endswith("test") else labels
                ratings = _segment_ratings(rng, spec, active, len(rgb)) if rated else None
                writer.write(
                    _sequence_example(video_id, kept_labels, rgb, audio, id_feature, ratings)
                )
                num_videos += 1
                num_frames += len(rgb)
        tf.io.gfile.rename(temporary, path, overwrite=True)
    return num_videos, num_frames


def make_sample(
    output_dir,
    dataset_version="2018",
    seed=2019,
    num_active_classes=24,
    num_train_files=4,
    num_validate_files=2,
    num_test_files=1,
    videos_per_file=200,
    max_video_frames=360,
    segments=False,
):
    """Writes the sample and a `sample_manifest.json`; returns the manifest dict.
    With `segments`, one file of each segments_* split besides."""
    _, num_classes = utils.dataset_version_info(dataset_version)
    tf.io.gfile.makedirs(output_dir)
    spec = SampleSpec(seed, num_classes, num_active_classes)
    manifest = {
        "dataset_version": str(dataset_version),
        "num_classes": num_classes,
        "seed": seed,
        "active_classes": spec.classes.tolist(),
        "burst_classes": spec.classes[spec.is_burst].tolist(),
        "splits": {},
    }
    splits = [
        ("train", num_train_files),
        ("validate", num_validate_files),
        ("test", num_test_files),
    ]
    if segments:
        splits += [(f"segments_{split}", 1) for split in ("train", "validate", "test")]
    for split, num_files in splits:
        videos, frames = write_split(
            output_dir,
            split,
            num_files,
            spec,
            str(dataset_version),
            seed,
            videos_per_file,
            max_video_frames,
        )
        manifest["splits"][split] = {"files": num_files, "videos": videos, "frames": frames}
    runtime.write_json(os.path.join(output_dir, "sample_manifest.json"), manifest)
    return manifest


def main(argv):
    if len(argv) > 1:
        sys.exit(f"make_sample_data.py: unexpected arguments {argv[1:]}")
    manifest = make_sample(
        FLAGS.output_dir,
        dataset_version=FLAGS.dataset_version,
        seed=FLAGS.seed,
        num_active_classes=FLAGS.num_active_classes,
        num_train_files=FLAGS.num_train_files,
        num_validate_files=FLAGS.num_validate_files,
        num_test_files=FLAGS.num_test_files,
        videos_per_file=FLAGS.videos_per_file,
        max_video_frames=FLAGS.max_video_frames,
        segments=FLAGS.segments,
    )
    logging.info("Wrote sample to %s: %s", FLAGS.output_dir, json.dumps(manifest["splits"]))


if __name__ == "__main__":
    app.run(main)
