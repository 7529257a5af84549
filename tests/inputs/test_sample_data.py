"""The sample generator: exact format, determinism, realistic shape, learnable content."""

import glob
import hashlib
import json
import os

import numpy as np
import tensorflow as tf

from fewer_frames.evaluation import eval_util
from fewer_frames.inputs import sample_data
from testlib import dequantize, run_binary


def _load_split(sample_dir, split, id_key="id"):
    """Direct protobuf parse of a split: ids, label lists and uint8 frames per video."""
    videos = []
    for path in sorted(glob.glob(os.path.join(sample_dir, f"{split}*.tfrecord"))):
        for raw in tf.compat.v1.io.tf_record_iterator(path):
            example = tf.train.SequenceExample.FromString(raw)
            context = example.context.feature
            lists = example.feature_lists.feature_list
            rgb = [f.bytes_list.value[0] for f in lists["rgb"].feature]
            audio = [f.bytes_list.value[0] for f in lists["audio"].feature]
            videos.append(
                {
                    "id": context[id_key].bytes_list.value[0],
                    "labels": list(context["labels"].int64_list.value)
                    if "labels" in context
                    else None,
                    "rgb_sizes": {len(frame) for frame in rgb},
                    "audio_sizes": {len(frame) for frame in audio},
                    "frames": np.concatenate(
                        [
                            np.frombuffer(b"".join(rgb), np.uint8).reshape(len(rgb), 1024),
                            np.frombuffer(b"".join(audio), np.uint8).reshape(len(audio), 128),
                        ],
                        axis=1,
                    ),
                }
            )
    return videos


def _digests(folder):
    return {
        os.path.basename(path): hashlib.sha256(open(path, "rb").read()).hexdigest()
        for path in sorted(glob.glob(os.path.join(folder, "*")))
    }


def test_binary_is_deterministic_and_writes_2017_format(tmp_path):
    flags = [
        "--num_train_files=1",
        "--num_validate_files=1",
        "--num_test_files=1",
        "--videos_per_file=12",
        "--dataset_version=2017",
    ]
    run_binary("make_sample_data.py", f"--output_dir={tmp_path / 'a'}", *flags)
    run_binary("make_sample_data.py", f"--output_dir={tmp_path / 'b'}", *flags)
    first, second = _digests(tmp_path / "a"), _digests(tmp_path / "b")
    assert sorted(first) == [
        "sample_manifest.json",
        "test0000.tfrecord",
        "train0000.tfrecord",
        "validate0000.tfrecord",
    ]
    assert first == second
    videos = _load_split(str(tmp_path / "a"), "train", id_key="video_id")
    assert len(videos) == 12
    assert all(len(video["id"]) == 11 for video in videos)
    assert max(max(video["labels"]) for video in videos) < 4716
    other_seed = tmp_path / "c"
    run_binary("make_sample_data.py", f"--output_dir={other_seed}", "--seed=5", *flags)
    assert _digests(other_seed)["train0000.tfrecord"] != first["train0000.tfrecord"]


def test_format_and_shape_of_the_sample(small_sample):
    sample_dir, manifest = small_sample
    train = _load_split(sample_dir, "train")
    test = _load_split(sample_dir, "test")
    assert len(train) == manifest["splits"]["train"]["videos"] == 120
    for video in train:
        assert video["rgb_sizes"] == {1024} and video["audio_sizes"] == {128}
        assert 1 <= len(video["labels"]) <= 5
        assert set(video["labels"]) <= set(manifest["active_classes"])
        assert len(video["id"]) == 4
    assert all(video["labels"] is None for video in test)
    lengths = np.array([len(video["frames"]) for video in train])
    assert lengths.min() <= 10 and lengths.max() > 300
    assert np.mean((lengths >= 100) & (lengths <= 300)) > 0.7
    classes = manifest["active_classes"]
    assert min(classes) < 3862 / 4 and max(classes) > 3 * 3862 / 4
    with open(os.path.join(sample_dir, "sample_manifest.json")) as handle:
        assert json.load(handle) == manifest


def _mean_features(videos, num_classes):
    features = np.stack(
        [dequantize(video["frames"][:300].astype(np.float64)).mean(0) for video in videos]
    )
    labels = np.zeros((len(videos), num_classes))
    for row, video in enumerate(videos):
        labels[row, video["labels"]] = 1
    return features, labels


def test_a_simple_learner_beats_a_random_scorer(small_sample):
    sample_dir, manifest = small_sample
    num_classes = manifest["num_classes"]
    train_x, train_y = _mean_features(_load_split(sample_dir, "train"), num_classes)
    valid_x, valid_y = _mean_features(_load_split(sample_dir, "validate"), num_classes)
    mean = train_x.mean(0)
    weights = np.linalg.solve(
        (train_x - mean).T @ (train_x - mean) + 10.0 * np.eye(train_x.shape[1]),
        (train_x - mean).T @ train_y,
    )
    learned_gap = eval_util.calculate_gap((valid_x - mean) @ weights, valid_y)
    random_gap = eval_util.calculate_gap(np.random.default_rng(0).random(valid_y.shape), valid_y)
    assert random_gap < 0.05
    assert learned_gap > 0.5


def test_every_frame_beats_every_tenth_frame_on_burst_classes(small_sample):
    """Max-pooled evidence of burst classes: all frames find it, sparse frames often miss it."""
    sample_dir, manifest = small_sample
    spec = sample_data.SampleSpec(manifest["seed"], manifest["num_classes"], 24)
    patterns = np.concatenate([spec.rgb_patterns, spec.audio_patterns], axis=1)[spec.is_burst]
    burst_classes = spec.classes[spec.is_burst]
    videos = _load_split(sample_dir, "train") + _load_split(sample_dir, "validate")

    def gap(stride):
        scores, labels = [], []
        for video in videos:
            frames = dequantize(video["frames"][:300:stride].astype(np.float64))
            frames = frames - frames.mean(0)
            scores.append((frames @ patterns.T).max(0))
            labels.append(np.isin(burst_classes, video["labels"]).astype(float))
        return eval_util.calculate_gap(np.array(scores), np.array(labels), top_k=5)

    all_frames, every_tenth = gap(1), gap(10)
    assert all_frames > every_tenth + 0.1, (all_frames, every_tenth)
