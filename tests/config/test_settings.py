"""Training settings reach the graph: the learning-rate schedule and the loss weights."""

import os
import re

import pytest

from testlib import TINY_RUN, event_values, read_json, run_binary

BATCH, DECAY_EXAMPLES, BASE_RATE = 16, 40, 0.002
WEIGHTS = {"ce": 0.3, "rep": 0.7, "pred": 2.5}


def test_learning_rate_decay_and_loss_weights_reach_the_run(small_sample, tmp_path):
    sample_dir, _ = small_sample
    train_dir = str(tmp_path / "run")
    run_binary(
        "train.py",
        f"--train_dir={train_dir}",
        f"--train_data_pattern={sample_dir}/train*.tfrecord",
        *TINY_RUN,
        f"--batch_size={BATCH}",
        "--max_steps=8",
        "--log_every_steps=1",
        f"--base_learning_rate={BASE_RATE}",
        "--learning_rate_decay=0.5",
        f"--learning_rate_decay_examples={DECAY_EXAMPLES}",
        *(f"--{part}_loss_weight={weight}" for part, weight in WEIGHTS.items()),
    )
    values = event_values(train_dir)
    # The rate of the update that ends at step s saw (s - 1) x 16 examples: 0, 16
    # and 32 below 40, 48 and 64 below 80, then 80, 96, 112.
    halvings = {1: 0, 2: 0, 3: 0, 4: 1, 5: 1, 6: 2, 7: 2, 8: 2}
    assert sorted(values["learning_rate"]) == sorted(halvings)
    for step, count in halvings.items():
        assert values["learning_rate"][step] == pytest.approx(BASE_RATE * 0.5**count, rel=1e-6)

    # The student's loss is the weighted sum of its parts at every step, and its
    # total adds only the (tiny) weight penalties.
    for step in halvings:
        parts = {part: values[f"losses/{part}_loss"][step] for part in WEIGHTS}
        student = values["losses/student_loss"][step]
        expected = sum(WEIGHTS[part] * value for part, value in parts.items())
        assert student == pytest.approx(expected, rel=1e-5), (step, parts, student)
        total = values["losses/student_total_loss"][step]
        assert student <= total <= student * (1 + 1e-5) + 1e-6, (step, student, total)
    saved = read_json(os.path.join(train_dir, "train_flags.json"))
    assert saved["training"]["learning_rate_decay"] == 0.5
    assert saved["training"]["learning_rate_decay_examples"] == DECAY_EXAMPLES
    for part, weight in WEIGHTS.items():
        assert saved["distillation"][f"{part}_loss_weight"] == weight


def test_the_log_line_gives_the_epoch_and_the_eta(small_sample, tmp_path):
    sample_dir, manifest = small_sample
    videos = manifest["splits"]["train"]["videos"]
    train_dir = tmp_path / "run"
    common = [
        f"--train_dir={train_dir}",
        f"--train_data_pattern={sample_dir}/train*.tfrecord",
        *TINY_RUN,
        f"--batch_size={BATCH}",
        "--log_every_steps=1",
    ]
    first = run_binary("train.py", *common, "--num_epochs=2").stderr
    # The files (14 MB each) are larger than the start-up reads: the count is an
    # estimate from the records in the first 4 MB, marked as one.
    estimated = re.search(r"Estimated ~(\d+) videos in 2 files \((\d+) records seen", first)
    assert estimated, first[-3000:]
    guess = int(estimated.group(1))
    assert abs(guess - videos) <= 0.1 * videos and int(estimated.group(2)) >= 5
    assert re.search(
        r"training step 1\|.*\| Epoch: ~0\.1\d/2\| ETA: ~\d+:\d\d:\d\d \(step 1 of ~"
        + str(-(-2 * guess // BATCH)),
        first,
    )
    # The run still ends after exactly two passes: 240 videos in batches of 16.
    steps = -(-2 * videos // BATCH)
    assert f"Final checkpoint at global step {steps} " in first
    # Resumed for one more epoch (120 more videos, 8 more steps), and --max_steps
    # below its estimated end: the end is known, not estimated.
    again = run_binary("train.py", *common, "--num_epochs=1", f"--max_steps={steps + 6}").stderr
    assert f"Final checkpoint at global step {steps + 6} " in again
    assert f"ETA: 0:00:00 (step {steps + 6} of {steps + 6})" in again
    assert re.search(r"Epoch: ~0\.\d\d/1\| ETA", again)
