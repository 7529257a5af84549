"""Compiled graphs (--xla) and reduced precision (--precision=bfloat16): the same
predictions as the plain float32 graph, to a stated tolerance, through the
binaries."""

import json
import subprocess

import numpy as np
import pytest
import tensorflow as tf

from testlib import (
    TINY_RUN,
    binary_launcher,
    read_csv,
    run_binary,
    run_inference,
    validated_metrics,
)

XLA_COMPILED = "Compiled cluster using XLA"
# TensorFlow's INFO lines (the tests hide them) say whether XLA compiled.
INFO_LOG = {"TF_CPP_MIN_LOG_LEVEL": "0"}
# bfloat16 keeps 8 bits of mantissa: scores within this of float32's.
BFLOAT16_SCORE_TOLERANCE = 0.02
BFLOAT16_GAP_TOLERANCE = 0.005


def _inference(run, data, output, *flags, env=None):
    result = run_inference(run, data, output, *flags, env=env)
    return read_csv(output), result.stderr


def _scores_by_class(rows):
    return {video: dict(zip(c.tolist(), s.tolist(), strict=True)) for video, (c, s) in rows.items()}


@pytest.fixture
def plain(small_sample, shared_run, tmp_path):
    sample_dir, _ = small_sample
    data = f"{sample_dir}/validate*.tfrecord"
    run = shared_run("teacher_student")
    rows, _ = _inference(run, data, tmp_path / "plain.csv")
    return run, data, rows


def test_xla_gives_the_plain_graphs_predictions(plain, tmp_path):
    run, data, rows = plain
    compiled, log = _inference(run, data, tmp_path / "xla.csv", "--xla", env=INFO_LOG)
    assert XLA_COMPILED in log
    assert list(compiled) == list(rows)
    expected, got = _scores_by_class(rows), _scores_by_class(compiled)
    for video in rows:
        common = expected[video].keys() & got[video].keys()
        assert len(common) >= 18  # the top 20 alike but for near-ties at the end
        for c in common:
            assert got[video][c] == pytest.approx(expected[video][c], abs=2e-6)


def test_bfloat16_predictions_and_gap_within_tolerance(plain, tmp_path):
    run, data, rows = plain
    reduced, _ = _inference(run, data, tmp_path / "bf16.csv", "--precision=bfloat16")
    expected, got = _scores_by_class(rows), _scores_by_class(reduced)
    agreement, differences = [], []
    for video in rows:
        common = expected[video].keys() & got[video].keys()
        agreement.append(len(common) / len(expected[video]))
        differences += [abs(got[video][c] - expected[video][c]) for c in common]
    assert max(differences) < BFLOAT16_SCORE_TOLERANCE
    assert max(differences) > 1e-4  # computed in bfloat16 indeed, not float32
    # The scores themselves are float32 (bfloat16's 8 bits would tie videos in
    # the GAP's ranking): few of the printed scores are bfloat16 values.
    printed = np.concatenate([scores for _, scores in reduced.values()]).astype(np.float32)
    bits = printed.view(np.uint32)
    nearest = (bits + 0x7FFF + ((bits >> 16) & 1)) & 0xFFFF0000  # round to nearest even
    rounded = np.mean(np.abs(printed - nearest.astype(np.uint32).view(np.float32)) < 5e-7)
    assert rounded < 0.2, rounded
    assert np.mean(agreement) > 0.8, np.mean(agreement)
    gaps = {}
    for precision in ("float32", "bfloat16"):
        metrics = validated_metrics(
            run, data, tmp_path / f"{precision}.json", f"--precision={precision}"
        )
        gaps[precision] = metrics["gap"]
    assert gaps["bfloat16"] == pytest.approx(gaps["float32"], abs=BFLOAT16_GAP_TOLERANCE)


def test_a_bfloat16_export_reads_the_float32_checkpoint(plain, small_sample, tmp_path):
    run, _, _ = plain
    sample_dir, _ = small_sample
    export_dir = tmp_path / "export"
    run_binary(
        "export_model.py",
        f"--train_dir={run}",
        f"--export_dir={export_dir}",
        "--precision=bfloat16",
        "--top_k=5",
    )
    expected, _ = _inference(
        run, f"{sample_dir}/test*.tfrecord", tmp_path / "bf16.csv", "--precision=bfloat16"
    )
    code = f"""
import json, tensorflow as tf
serve = tf.saved_model.load({str(export_dir)!r}).signatures["serving_default"]
records = [r.numpy() for r in tf.data.TFRecordDataset({sample_dir + "/test0000.tfrecord"!r})]
out = serve(input_batch_unparsed=tf.constant(records))
print(json.dumps([out["predictions"].dtype.name, out["predictions"].numpy().tolist()]))
"""
    result = subprocess.run([binary_launcher(), "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-3000:]
    dtype, scores = json.loads(result.stdout.splitlines()[-1])
    assert dtype == "float32"
    want = np.array([s[:5] for _, s in expected.values()])
    np.testing.assert_allclose(np.array(scores), want, atol=2e-6)


# TensorFlow's log line each time Grappler starts on a session's graph (tf.data logs its
# own optimizer's as "item: graph").
GRAPPLER_STARTED = "Starting optimization for grappler item: tf_graph"


def test_training_with_xla_or_grappler_takes_the_same_first_step(small_sample, tmp_path):
    sample_dir, _ = small_sample
    losses = {}
    # One run with both flags: each shows in the log, and neither changes the loss.
    for name, flags in (("plain", []), ("xla", ["--xla", "--grappler"])):
        result = run_binary(
            "train.py",
            f"--train_dir={tmp_path / name}",
            f"--train_data_pattern={sample_dir}/train*.tfrecord",
            *TINY_RUN,  # 60 frames: XLA compiles the graph of 300 in twice the time
            "--training_mode=student_only",  # and the student alone in less than half
            "--max_steps=1",
            "--deterministic",
            "--log_every_steps=1",
            *flags,
            env=dict(INFO_LOG, TF_CPP_VMODULE="meta_optimizer=1"),
        )
        losses[name] = result.stderr
    assert XLA_COMPILED in losses["xla"] and XLA_COMPILED not in losses["plain"]
    # Off by default (docs/speed.md), on with --grappler.
    assert GRAPPLER_STARTED in losses["xla"] and GRAPPLER_STARTED not in losses["plain"]

    def first_loss(log):
        line = next(line for line in log.splitlines() if "training step 1|" in line)
        return float(line.split("L_CE: ")[1].split("|")[0])

    assert first_loss(losses["xla"]) == pytest.approx(first_loss(losses["plain"]), abs=1e-5)


def test_bfloat16_models_compute_in_bfloat16_and_give_float32(fresh_graph):
    from fewer_frames.models import model_config, model_graph

    config = model_config.ModelConfig(
        models=["teacher", "student"],
        num_classes=50,
        model_params={"lstm_cells": 8, "lstm_layers": 1, "moe_num_mixtures": 2},
    )
    outputs = model_graph.build_models(
        config, model_graph.placeholder_batch(config), precision="bfloat16"
    )
    floats = {name: t.dtype for name, t in outputs.items() if t.dtype.is_floating}
    assert set(floats) >= {
        "teacher_representation",
        "teacher_predictions",
        "student_representation",
        "student_predictions",
    }
    assert set(floats.values()) == {tf.float32}, floats
    matmuls = [op for op in fresh_graph.get_operations() if op.type in ("MatMul", "BatchMatMulV2")]
    assert matmuls and all(op.get_attr("T") == tf.bfloat16 for op in matmuls)
    # Every weight is read through one bfloat16 copy, filled after a restore.
    copies = tf.compat.v1.get_collection(model_graph.PRECISION_COPIES)
    assert len(copies) == len(tf.compat.v1.trainable_variables())
    assert {c.dtype.base_dtype for c in copies} == {tf.bfloat16}
