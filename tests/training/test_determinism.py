"""Same flags and --random_seed: bit-identical checkpoints and metrics; another seed
differs. (Fine-tuning runs the same training loop, seeded the same way.)"""

import numpy as np

from testlib import TINY_RUN, checkpoint_variables, read_json, run_binary

TINY = [
    *TINY_RUN,
    "--max_steps=12",
    "--log_every_steps=4",
    # The random rule: stateful random ops in training, seeded by the graph seed.
    "--frame_selection=random",
    "--num_student_frames=5",
    "--student_num_inputs_to_lstm=5",
]
METRICS = ("gap", "map", "hit_at_one", "perr", "loss", "rep_loss", "num_examples")


def _run(sample_dir, run_dir, seed):
    """Train and validate: every tensor of the checkpoint, and the metrics."""
    train_dir = run_dir / "train"
    train_data = f"--train_data_pattern={sample_dir}/train*.tfrecord"
    eval_data = f"--eval_data_pattern={sample_dir}/validate*.tfrecord"
    run_binary("train.py", f"--train_dir={train_dir}", f"--random_seed={seed}", train_data, *TINY)
    run_binary(
        "validate.py",
        f"--train_dir={train_dir}",
        eval_data,
        "--run_once",
        f"--metrics_json={run_dir}/validate.json",
        "--batch_size=32",
    )
    tensors = checkpoint_variables(str(train_dir))
    result = read_json(run_dir / "validate.json")
    return tensors, {key: result[key] for key in METRICS if key in result}


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
    assert "gap" in first_metrics and "rep_loss" in first_metrics

    other_tensors, other_metrics = _run(sample_dir, tmp_path / "other", seed=8)
    model_variables = [name for name in other_tensors if name.startswith("model")]
    changed = [
        name
        for name in model_variables
        if not np.array_equal(first_tensors[name], other_tensors[name])
    ]
    assert len(changed) > len(model_variables) // 2, changed
    assert other_metrics["gap"] != first_metrics["gap"]
