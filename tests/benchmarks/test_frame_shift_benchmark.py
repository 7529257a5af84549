"""benchmark.py --what=frame_shift: the student scored on frames one step off,
checked against validate.py on records whose frames were moved by hand."""

import numpy as np
import pytest
import tensorflow as tf

from testlib import TINY_RUN, read_csv, read_json, run_binary, run_inference, validated_metrics


def _moved_one_step_earlier(source, destination):
    """Each record with frame i + 1 at step i (the last frame kept, so the length
    is the same): a student reading step i reads what the +1 shift gives it."""
    with tf.io.TFRecordWriter(str(destination)) as writer:
        for serialized in tf.compat.v1.io.tf_record_iterator(source):
            example = tf.train.SequenceExample.FromString(serialized)
            for feature_list in example.feature_lists.feature_list.values():
                frames = [bytes(f.bytes_list.value[0]) for f in feature_list.feature]
                for feature, frame in zip(
                    feature_list.feature, [*frames[1:], frames[-1]], strict=True
                ):
                    feature.bytes_list.value[0] = frame
            writer.write(example.SerializeToString())


def _top20_agreement(first, second):
    """The mean share of each video's 20 best classes in `first` (inference.py's
    CSV) that are among its 20 best in `second`."""
    a, b = read_csv(first), read_csv(second)
    return np.mean([len(set(a[video][0]) & set(b[video][0])) / 20 for video in a])


def test_frame_shift_scores_the_student_on_frames_one_step_off(small_sample, tmp_path):
    sample_dir, _ = small_sample
    train_dir = tmp_path / "run"
    run_binary(
        "train.py",
        f"--train_dir={train_dir}",
        f"--train_data_pattern={sample_dir}/train*.tfrecord",
        *TINY_RUN,
        "--max_steps=30",
        "--frame_jitter=1",
    )
    validate = f"{sample_dir}/validate0000.tfrecord"
    output = tmp_path / "shift.json"
    run_binary(
        "benchmark.py",
        "--what=frame_shift",
        f"--train_dir={train_dir}",
        f"--data_pattern={validate}",
        "--frame_shift_seeds=2",
        f"--output_json={output}",
    )
    figures = read_json(output)
    variants = figures["variants"]
    assert sorted(variants) == ["+1", "-1", "0", "random_seed_1", "random_seed_2"]
    assert figures["videos"] == 60 and figures["frame_jitter"] == 1  # the run's own
    # Unshifted: the student's own scores; +1: its scores on the moved records.
    plain = validated_metrics(train_dir, validate, tmp_path / "plain.json", "--eval_model=student")
    moved = tmp_path / "moved.tfrecord"
    _moved_one_step_earlier(validate, moved)
    later = validated_metrics(
        train_dir, str(moved), tmp_path / "moved.json", "--eval_model=student"
    )
    for name, oracle in (("0", plain), ("+1", later)):
        assert variants[name]["gap"] == pytest.approx(oracle["gap"], abs=1e-6), name
        assert variants[name]["hit_at_one"] == pytest.approx(oracle["hit_at_one"], abs=1e-9)
    assert variants["0"]["top20_agreement"] == 1.0
    for data, name in ((validate, "plain"), (moved, "moved")):
        run_inference(train_dir, data, tmp_path / f"{name}.csv", "--top_k=20")
    agreement = _top20_agreement(tmp_path / "moved.csv", tmp_path / "plain.csv")
    assert variants["+1"]["top20_agreement"] == pytest.approx(agreement, abs=1e-9)
    assert agreement < 1
    for name in ("-1", "random_seed_1", "random_seed_2"):
        assert 0 < variants[name]["top20_agreement"] < 1, name
    assert variants["random_seed_1"] != variants["random_seed_2"]
    gaps = [variants[f"random_seed_{seed}"]["gap"] for seed in (1, 2)]
    assert figures["random"]["gap"] == {
        "mean": pytest.approx(np.mean(gaps)),
        "sd": pytest.approx(np.std(gaps, ddof=1)),
    }
    assert figures["gap_lost"]["+1"] == pytest.approx(plain["gap"] - later["gap"], abs=1e-6)
