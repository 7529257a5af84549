"""Same flags and --random_seed: bit-identical checkpoints and metrics; another seed differs."""

import os

import numpy as np
import tensorflow as tf

from testlib import read_json, run_binary

TINY = [
    "--lstm_cells=8",
    "--lstm_layers=1",
    "--batch_size=16",
    "--num_readers=2",
    "--num_epochs=0",
    "--max_steps=12",
    "--log_every_steps=4",
    # The random rule: stateful random ops in training, seeded by the graph seed.
    "--frame_selection=random",
    "--num_student_frames=5",
]
METRICS = ("gap", "map", "hit_at_one", "perr", "loss", "rep_loss", "num_examples")


def _run(sample_dir, run_dir, seed):
    run_binary(
        "train.py",
        f"--train_dir={run_dir}",
        f"--train_data_pattern={sample_dir}/train*.tfrecord",
        f"--random_seed={seed}",
        *TINY,
    )
    metrics = os.path.join(run_dir, "metrics.json")
    run_binary(
        "validate.py",
        f"--train_dir={run_dir}",
        f"--eval_data_pattern={sample_dir}/validate*.tfrecord",
        "--run_once",
        f"--metrics_json={metrics}",
        "--batch_size=32",
    )
    checkpoint = tf.train.load_checkpoint(tf.train.latest_checkpoint(run_dir))
    tensors = {name: checkpoint.get_tensor(name) for name in checkpoint.get_variable_to_shape_map()}
    result = read_json(metrics)
    return tensors, {key: result[key] for key in METRICS}


def test_same_seed_same_run_other_seed_other_run(small_sample, tmp_path):
    sample_dir, _ = small_sample
    first_tensors, first_metrics = _run(sample_dir, tmp_path / "first", seed=7)
    again_tensors, again_metrics = _run(sample_dir, tmp_path / "again", seed=7)
    assert sorted(first_tensors) == sorted(again_tensors)
    differing = [
        name
        for name in first_tensors
        if not np.array_equal(first_tensors[name], again_tensors[name])
    ]
    assert not differing, differing
    assert first_metrics == again_metrics

    other_tensors, other_metrics = _run(sample_dir, tmp_path / "other", seed=8)
    model_variables = [name for name in first_tensors if name.startswith("model")]
    changed = [
        name
        for name in model_variables
        if not np.array_equal(first_tensors[name], other_tensors[name])
    ]
    assert len(changed) > len(model_variables) // 2, changed
    assert other_metrics != first_metrics
