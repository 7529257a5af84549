"""The sample data set (make_sample_data.py describes its content): deterministic,
learnable frame-level YouTube-8M records, and optionally 2019 segment ratings."""

import os

import numpy as np
import tensorflow as tf

from fewer_frames.inputs import yt8m_format
from fewer_frames.system import filesystem

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
    return labels, yt8m_format.quantize(rgb), yt8m_format.quantize(audio)


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


def sequence_example(video_id, labels, rgb, audio, id_feature, ratings=None):
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
    id_feature, _ = yt8m_format.dataset_version_info(version)
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
                    sequence_example(video_id, kept_labels, rgb, audio, id_feature, ratings)
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
    _, num_classes = yt8m_format.dataset_version_info(dataset_version)
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
    filesystem.write_json(os.path.join(output_dir, "sample_manifest.json"), manifest)
    return manifest
