"""Towers: one step on N logical CPU devices equals one step on one device."""

import dataclasses
import shutil

import numpy as np
import pytest
import tensorflow as tf

from fewer_frames.models import memory_estimate, model_config, model_graph
from fewer_frames.training import towers, training_graph
from testlib import (
    ALL_FRAMES,
    TINY_INPUT,
    TINY_RUN,
    assert_learned,
    checkpoint_variables,
    run_binary,
    validated_gap,
)

STUDENT = ["--num_student_frames=6", "--student_num_inputs_to_lstm=3", "--random_seed=5"]
# Plain gradient steps without clipping: a step moves the weights by the gradient
# itself, so a loss of the wrong scale shows (Adam and norm clipping would hide it).
# L_pred (a batch sum, the others batch means) weighs enough to show too.
PLAIN_STEP = [
    "--optimizer=GradientDescentOptimizer",
    "--clip_gradient_norm=0",
    "--base_learning_rate=0.1",
    "--pred_loss_weight=100",
]


def _train(binary, train_dir, sample_dir, *flags):
    run_binary(
        binary,
        f"--train_dir={train_dir}",
        f"--train_data_pattern={sample_dir}/train*.tfrecord",
        *TINY_RUN,
        *flags,
        *STUDENT,  # last: each run's student is the same
    )


def _one_step_each_way(binary, start_dir, tmp_path, sample_dir, *flags):
    """From one checkpoint at step 1: a step on one device, and on two CPU towers."""
    results = {}
    for name, tower_flags in (("one", []), ("two", ["--num_cpu_towers=2"])):
        directory = tmp_path / name
        shutil.copytree(start_dir, directory)
        _train(binary, directory, sample_dir, "--max_steps=2", *PLAIN_STEP, *flags, *tower_flags)
        results[name] = checkpoint_variables(str(directory))
    return checkpoint_variables(str(start_dir)), results["one"], results["two"]


def _assert_same_step(start, one, two, learning):
    assert sorted(one) == sorted(two)
    moved = [name for name in learning if not np.array_equal(start[name], one[name])]
    assert moved and len(moved) == len(learning), sorted(set(learning) - set(moved))
    for name in one:
        np.testing.assert_allclose(two[name], one[name], atol=1e-5, rtol=0, err_msg=name)


@pytest.mark.parametrize("mode", ["parallel", "serial"])
def test_two_towers_step_equals_one_device_step(mode, small_sample, shared_run, tmp_path):
    sample_dir, _ = small_sample
    flags = [f"--training_mode={mode}"]
    if mode == "serial":
        flags.append(f"--teacher_dir={shared_run('teacher')}")
    start_dir = tmp_path / "start"
    _train("train.py", start_dir, sample_dir, "--max_steps=1", *flags)
    start, one, two = _one_step_each_way("train.py", start_dir, tmp_path, sample_dir, *flags)
    scopes = ("model/", "model_student/") if mode == "parallel" else ("model_student/",)
    learning = [name for name in one if name.startswith(scopes)]
    _assert_same_step(start, one, two, learning)
    if mode == "serial":  # the frozen teacher stays as it was
        teacher_names = [name for name in one if name.startswith("model/")]
        assert all(np.array_equal(start[name], two[name]) for name in teacher_names)


def test_two_towers_finetune_step_equals_one_device_step(small_sample, tmp_path):
    sample_dir, _ = small_sample
    trained = tmp_path / "trained"
    _train("train.py", trained, sample_dir, "--max_steps=2")
    start_dir = tmp_path / "start"
    run_binary("train_convert_model.py", f"--train_dir={trained}", f"--finetune_dir={start_dir}")
    run_binary(
        "train_finetune.py",
        f"--train_dir={start_dir}",
        f"--train_data_pattern={sample_dir}/train*.tfrecord",
        *TINY_INPUT,
        "--random_seed=5",
        "--max_steps=3",
    )
    start = checkpoint_variables(str(start_dir))
    results = {}
    for name, tower_flags in (("one", []), ("two", ["--num_cpu_towers=2"])):
        directory = tmp_path / name
        shutil.copytree(start_dir, directory)
        run_binary(
            "train_finetune.py",
            f"--train_dir={directory}",
            f"--train_data_pattern={sample_dir}/train*.tfrecord",
            *TINY_INPUT,
            "--random_seed=5",
            "--max_steps=4",
            *PLAIN_STEP,
            *tower_flags,
        )
        results[name] = checkpoint_variables(str(directory))
    learning = [name for name in results["one"] if name.startswith("model_student/")]
    _assert_same_step(start, results["one"], results["two"], learning)


def test_short_run_with_towers_learns_like_one_without(small_sample, tmp_path):
    sample_dir, manifest = small_sample
    weights = {}
    for name, tower_flags in (("one", []), ("two", ["--num_cpu_towers=2"])):
        directory = tmp_path / name
        _train(
            "train.py",
            directory,
            sample_dir,
            "--max_steps=40",
            "--lstm_cells=32",
            # Classes happen past the first 60 frames too: the student of 6 of
            # those learned nothing in 40 steps (GAP 0.10, prior 0.22).
            *ALL_FRAMES,
            "--base_learning_rate=0.01",
            *tower_flags,
        )
        weights[name] = checkpoint_variables(str(directory))
    # 40 steps of the same updates: the same weights, to float rounding (1e-6 on
    # 8 cells), so the same scores.
    assert sorted(weights["one"]) == sorted(weights["two"])
    for name, value in weights["one"].items():
        np.testing.assert_allclose(weights["two"][name], value, atol=1e-4, rtol=0, err_msg=name)
    for model in ("teacher", "student"):
        # Both H-RNNs learn: above the class prior (40 steps: teacher 0.39, student 0.29).
        gap = validated_gap(tmp_path / "one", sample_dir, model, tmp_path / f"{model}.json")
        assert_learned(gap, sample_dir, manifest["num_classes"], model)


def test_full_size_graph_with_four_towers_builds_on_four_cpu_devices():
    # The paper's sizes but 100 frames in 10 chunks: the same variables, and a graph
    # that builds in half the time of 300 frames in 20 chunks.
    paper = model_config.RequestedModel().new_config(["teacher", "student"])
    config = dataclasses.replace(
        paper,
        max_num_frames=100,
        model_params=dataclasses.replace(paper.model_params, num_inputs_to_lstm=10),
    )
    devices = towers.tower_devices(num_cpu_towers=4)
    with tf.Graph().as_default() as graph:
        batch = model_graph.placeholder_batch(config)
        built = training_graph.build_training_graph(config, "parallel", batch, devices=devices)
    op_devices = {op.device for op in graph.get_operations() if op.name.startswith("tower_")}
    assert {f"/device:CPU:{index}" for index in range(1, 4)} <= op_devices
    variables = graph.get_collection(tf.compat.v1.GraphKeys.TRAINABLE_VARIABLES)
    # 1024-unit LSTMs: the first layer's kernel takes 1152 features + 1024 units.
    assert [1152 + 1024, 4 * 1024] in [variable.shape.as_list() for variable in variables]
    assert all(variable.device == "/device:CPU:0" for variable in variables)
    # One set of weights for all towers: as many values as teacher and student once.
    assert sum(v.shape.num_elements() for v in variables) == memory_estimate.parameter_count(config)
    assert built["train_op"] is not None
    predictions = built["predictions"]["student"]
    assert predictions.shape.as_list() == [None, config.num_classes]


def test_tower_flags_errors(small_sample, tmp_path):
    sample_dir, _ = small_sample
    for flags, message in (
        (["--num_gpu=2"], "--num_gpu=2, but 0 GPU(s) are visible"),
        (["--num_cpu_towers=3"], "--batch_size=16 cannot be split into 3 equal towers"),
        (["--num_gpu=2", "--num_cpu_towers=2"], "give --num_gpu or --num_cpu_towers, not both"),
    ):
        result = run_binary(
            "train.py",
            f"--train_dir={tmp_path / 'run'}",
            f"--train_data_pattern={sample_dir}/train*.tfrecord",
            *TINY_RUN,
            *flags,
            check=False,
        )
        assert result.returncode == 1 and message in result.stderr, result.stderr[-2000:]
