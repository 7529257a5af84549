"""--precision=bfloat16 training: float32 weights, optimizer state and checkpoints,
bfloat16 matmuls; a run resumes and scores in either precision."""

import numpy as np
import pytest
import tensorflow as tf

from fewer_frames.config import settings
from fewer_frames.models import model_config, model_graph
from fewer_frames.training import training_graph
from testlib import (
    TINY_RUN,
    checkpoint_variables,
    event_values,
    read_json,
    run_binary,
    validated_metrics,
)

PARAMS = {
    "HierarchicalLstmModel": {"lstm_cells": 8, "lstm_layers": 1, "num_inputs_to_lstm": 20},
    # Batch norm (its statistics updated in training) and context gating.
    "NeXtVLADModel": {"nextvlad_cluster_size": 4, "nextvlad_hidden_size": 8, "groups": 2},
}


def _graph(precision, model):
    config = model_config.ModelConfig(
        models=["teacher", "student"], model=model, num_classes=20, model_params=PARAMS[model]
    )
    run = settings.RunSettings(training=settings.TrainingSettings(precision=precision))
    with tf.Graph().as_default() as graph:
        batch = model_graph.placeholder_batch(config)
        training_graph.build_training_graph(config, "parallel", batch, run)
    return graph


@pytest.mark.parametrize("model", sorted(PARAMS))
def test_bfloat16_graph_multiplies_in_bfloat16_and_keeps_float32_state(model):
    plain, reduced = _graph("float32", model), _graph("bfloat16", model)

    def variables(graph):
        with graph.as_default():
            return {
                v.op.name: (v.dtype.base_dtype, v.shape) for v in tf.compat.v1.global_variables()
            }

    # The same variables, every one float32: weights, Adam's slots, batch norm's statistics.
    assert variables(reduced) == variables(plain)
    assert {dtype for dtype, _ in variables(reduced).values()} <= {tf.float32, tf.int64}
    matmuls = [op for op in reduced.get_operations() if op.type in ("MatMul", "BatchMatMulV2")]
    forward = [op for op in matmuls if "gradients" not in op.name]
    assert forward and all(op.get_attr("T") == tf.bfloat16 for op in forward)
    assert all(
        op.get_attr("T") == tf.float32 for op in plain.get_operations() if op.type == "MatMul"
    )
    # The losses the optimizer minimises are float32.
    with reduced.as_default():
        losses = tf.compat.v1.get_collection(tf.compat.v1.GraphKeys.LOSSES)
    assert all(loss.dtype == tf.float32 for loss in losses)


def test_a_bfloat16_run_resumes_and_scores_in_either_precision(small_sample, tmp_path):
    sample_dir, _ = small_sample
    train_data = f"--train_data_pattern={sample_dir}/train*.tfrecord"
    runs = {}
    for precision in ("float32", "bfloat16"):
        runs[precision] = tmp_path / precision
        run_binary(
            "train.py",
            f"--train_dir={runs[precision]}",
            train_data,
            *TINY_RUN,
            "--max_steps=3",
            "--log_every_steps=1",
            f"--precision={precision}",
        )
    plain, reduced = (checkpoint_variables(str(runs[p])) for p in ("float32", "bfloat16"))
    assert sorted(plain) == sorted(reduced)
    for name, value in reduced.items():
        assert value.dtype == plain[name].dtype and value.shape == plain[name].shape, name
    assert read_json(runs["bfloat16"] / "train_flags.json")["training"]["precision"] == "bfloat16"
    # The same first step: the losses of the same weights, to bfloat16's precision.
    first = {p: event_values(str(runs[p])) for p in runs}
    for tag in ("losses/teacher_loss", "losses/ce_loss", "losses/rep_loss"):
        assert first["bfloat16"][tag][1] == pytest.approx(first["float32"][tag][1], rel=0.05), tag
    # The bfloat16 run goes on in float32, then scores in both precisions.
    run_binary(
        "train.py", f"--train_dir={runs['bfloat16']}", train_data, *TINY_RUN, "--max_steps=5"
    )
    gaps = {}
    for precision in ("float32", "bfloat16"):
        result = validated_metrics(
            runs["bfloat16"],
            f"{sample_dir}/validate*.tfrecord",
            tmp_path / f"{precision}.json",
            f"--precision={precision}",
        )
        assert result["global_step"] == 5
        gaps[precision] = result["gap"]
    assert np.isfinite(list(gaps.values())).all()
    assert gaps["bfloat16"] == pytest.approx(gaps["float32"], abs=0.02)
