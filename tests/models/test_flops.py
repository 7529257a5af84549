"""Analytic FLOPs per video (flops.py) against a count of the built graph.

The count walks the matmul ops of a one-video forward graph and takes 2 x the
output size x the contracted size from each op's own shapes (flops.py also
counts 2 per multiply-add and leaves element-wise ops out). The two must agree
exactly: every matmul of a model runs once per video in its graph (the LSTMs are
unrolled). TensorFlow's profiler checks the walk on the plain MatMul ops; it is
not used for the batched ones, whose count it takes from the wrong axis when the
first operand is transposed (NetVLAD's aggregation).
"""

import numpy as np
import pytest
import tensorflow as tf

from fewer_frames.models import flops, model_config, model_graph

FAMILIES = {
    "HierarchicalLstmModel": {"lstm_cells": 8, "lstm_layers": 2, "num_inputs_to_lstm": 5},
    "LstmModel": {"lstm_cells": 6, "lstm_layers": 2},
    "NetVLADModel": {"netvlad_cluster_size": 4, "netvlad_hidden_size": 8, "gating": True},
    "NetVLADModel_no_gating": {
        "netvlad_cluster_size": 4,
        "netvlad_hidden_size": 8,
        "gating": False,
    },
    "NeXtVLADModel": {
        "nextvlad_cluster_size": 4,
        "nextvlad_hidden_size": 16,
        "groups": 2,
        "expansion": 2,
        "gating_reduction": 4,
        "dropout": 0.0,
    },
}


def _config(family, model):
    params = dict(FAMILIES[family], video_level_classifier_model="MoeModel", moe_num_mixtures=3)
    if family == "HierarchicalLstmModel":
        params["student_num_inputs_to_lstm"] = 2
    return model_config.ModelConfig(
        models=[model],
        model=family.split("_")[0],
        model_params=params,
        feature_sizes=[12, 4],
        num_classes=7,
        max_num_frames=20,
        every_n=5,
    )


def _matmul_flops(op):
    """2 x multiply-adds of a MatMul or BatchMatMul op, from its shapes."""
    transposed = op.get_attr("transpose_a" if op.type == "MatMul" else "adj_x")
    first = op.inputs[0].shape.as_list()
    contracted = first[-2] if transposed else first[-1]
    return 2 * int(np.prod(op.outputs[0].shape.as_list())) * contracted


def _counted_flops(config):
    """(matmul FLOPs of a one-video forward graph of `config`, the profiler's
    count of its plain MatMul ops, the walk's count of those)."""
    steps = config.selection().frame_budget if config.decodes_student_frames_only() else None
    width = sum(config.feature_sizes)
    with tf.Graph().as_default() as graph:
        batch = {
            "video_ids": tf.constant([b"v"]),
            "video_matrix": tf.compat.v1.placeholder(
                tf.float32, [1, steps or config.max_num_frames, width]
            ),
            "labels": tf.zeros([1, config.num_classes]),
            "num_frames": tf.constant([steps or config.max_num_frames]),
        }
        model_graph.build_models(config, batch, is_training=False)
        matmuls = [
            op for op in graph.get_operations() if op.type.startswith(("MatMul", "BatchMatMul"))
        ]
        options = (
            tf.compat.v1.profiler.ProfileOptionBuilder(
                tf.compat.v1.profiler.ProfileOptionBuilder.float_operation()
            )
            .with_accounted_types(["MatMul"])
            .with_empty_output()
            .build()
        )
        profiled = tf.compat.v1.profiler.profile(graph, options=options).total_float_ops
    plain = sum(_matmul_flops(op) for op in matmuls if op.type == "MatMul")
    return sum(_matmul_flops(op) for op in matmuls), profiled, plain


@pytest.mark.parametrize("model", ["teacher", "student"])
@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_analytic_flops_equal_the_profiled_graph(family, model):
    config = _config(family, model)
    counted, profiled, plain = _counted_flops(config)
    assert profiled == plain > 0
    assert flops.flops_per_video(config, student=model == "student") == counted
