"""benchmark.py: each mode runs through the binary and writes its JSON figures."""

import json

import pytest

from fewer_frames.models import flops, memory_estimate, model_config
from testlib import run_binary


def _tiny_lstm_config(units):
    """Teacher and student H-RNNs of one `units`-wide layer, 50 classes."""
    return model_config.ModelConfig(
        models=["teacher", "student"],
        num_classes=50,
        model_params={
            "lstm_cells": units,
            "lstm_layers": 1,
            "num_inputs_to_lstm": 20,
            "student_num_inputs_to_lstm": 5,
            "video_level_classifier_model": "MoeModel",
            "moe_num_mixtures": 2,
        },
    )


def test_reader_mode_writes_its_figures(small_sample, tmp_path):
    sample_dir, manifest = small_sample
    output = tmp_path / "reader.json"
    run_binary(
        "benchmark.py",
        "--what=reader",
        f"--data_pattern={sample_dir}/train*.tfrecord",
        "--passes=2",
        "--batch_size=32",
        "--held_videos=50",
        f"--output_json={output}",
        fresh_process=True,  # once through a new interpreter, as a user runs it
    )
    figures = json.loads(output.read_text())
    assert figures["num_videos"] == manifest["splits"]["train"]["videos"]
    for name in ("read_only", "full_decode", "student_decode", "full_pipeline", "student_pipeline"):
        assert figures[f"{name}_videos_per_s"] > 0
        assert figures[f"{name}_cpu_us_per_video"] > 0
    # The decode figures time records held in memory: only the first --held_videos.
    assert figures["held_videos"] == 50
    for kind, ratio in (
        ("decode", "student_to_full_ratio"),
        ("pipeline", "student_to_full_pipeline_ratio"),
    ):
        assert figures[ratio] == (
            figures[f"student_{kind}_videos_per_s"] / figures[f"full_{kind}_videos_per_s"]
        )
    assert figures["student_frames"] == 30


def test_train_step_mode_writes_its_figures(tmp_path):
    output = tmp_path / "train_step.json"
    run_binary(
        "benchmark.py",
        "--what=train_step",
        "--lstm_cells=16",
        "--lstm_layers=1",
        "--batch_size=4",
        "--steps=1",
        "--num_classes=50",
        f"--output_json={output}",
    )
    figures = json.loads(output.read_text())
    for key in ("step_seconds", "train_flops_per_s", "matmul_flops_per_s"):
        assert figures[key] > 0, key
    # Both precisions measured; step_seconds is the --precision one's.
    assert figures["precision"] == "float32"
    assert figures["step_seconds"] == pytest.approx(1 / figures["float32_steps_per_second"])
    assert figures["bfloat16_speedup"] == pytest.approx(
        figures["bfloat16_steps_per_second"] / figures["float32_steps_per_second"]
    )
    # 16 units, 1 layer: the analytic count of 3 x forward for teacher and student.
    config = _tiny_lstm_config(units=16)
    teacher = 300 * 2 * (1152 + 16) * 64 + 20 * 2 * (32 + 16) * 64 + 2 * 32 * 50 * 5
    student = 30 * 2 * (1152 + 16) * 64 + 5 * 2 * (32 + 16) * 64 + 2 * 32 * 50 * 5
    assert flops.flops_per_video(config, student=False) == teacher
    assert flops.flops_per_video(config, student=True) == student
    assert figures["train_flops_per_step"] == 3 * 4 * (teacher + student)


def test_models_mode_measures_teacher_and_student(small_sample, tmp_path):
    sample_dir, _ = small_sample
    output = tmp_path / "models.json"
    run_binary(
        "benchmark.py",
        "--what=models",
        "--lstm_cells=16",
        "--lstm_layers=1",
        "--batch_size=8",
        "--model_batches=1",
        f"--data_pattern={sample_dir}/validate*.tfrecord",
        f"--output_json={output}",
    )
    figures = json.loads(output.read_text())
    keys = {
        "params",
        "flops_per_video",
        "model_videos_per_s",
        "end_to_end_videos_per_s",
        "peak_rss_mb",
    }
    for role in ("teacher", "student"):
        assert keys <= set(figures[role]), role
        assert all(figures[role][key] > 0 for key in keys), role
    assert figures["teacher"]["params"] == figures["student"]["params"]
    assert figures["teacher"]["frames_per_video"] == 300
    assert figures["student"]["frames_per_video"] == 30
    ratios = figures["ratios"]
    assert (
        ratios["flops"]
        == figures["teacher"]["flops_per_video"] / figures["student"]["flops_per_video"]
    )
    assert set(ratios) >= {"flops", "model_throughput", "end_to_end_throughput"}


def test_train_step_mode_measures_vlad_models_on_two_towers(tmp_path):
    output = tmp_path / "train_step.json"
    vlad = ["--model=NetVLADModel", "--netvlad_cluster_size=4", "--netvlad_hidden_size=8"]
    run_binary(
        "benchmark.py",
        "--what=train_step",
        *vlad,
        "--batch_size=2",
        "--steps=1",
        "--num_classes=10",
        "--num_cpu_towers=2",  # batch norm in towers
        f"--output_json={output}",
    )
    figures = json.loads(output.read_text())
    assert figures["model"] == "NetVLADModel" and figures["towers"] == 2
    assert figures["tower_devices"] == ["/device:CPU:0", "/device:CPU:1"]
    assert [name.rsplit("/", 1)[-1] for name in figures["session_devices"]] == [
        "device:CPU:0",
        "device:CPU:1",
    ]
    assert "CPU:0" in figures["devices"]
    assert figures["step_seconds"] > 0 and figures["matmul_flops_per_s"] > 0
    config = model_config.ModelConfig(
        models=["teacher", "student"],
        model="NetVLADModel",
        num_classes=10,
        model_params={
            "netvlad_cluster_size": 4,
            "netvlad_hidden_size": 8,
            "gating": True,
            "video_level_classifier_model": "MoeModel",
            "moe_num_mixtures": 2,
        },
    )
    per_step = 3 * 2 * (flops.flops_per_video(config, False) + flops.flops_per_video(config, True))
    assert figures["train_flops_per_step"] == per_step


def test_vlad_flop_counts():
    params = {
        "netvlad_cluster_size": 4,
        "netvlad_hidden_size": 8,
        "gating": False,
        "video_level_classifier_model": "LogisticModel",
        "moe_num_mixtures": 2,
    }
    config = model_config.ModelConfig(
        models=["teacher"],
        model="NetVLADModel",
        model_params=params,
        num_classes=10,
        feature_sizes=[6, 2],
    )
    # Per frame: 4*6*4 + 4*2*2; then hidden 2*(6*4 + 2*2)*8 and the classifier 2*8*10.
    per_video = 300 * (96 + 16) + 2 * 28 * 8 + 2 * 8 * 10
    assert flops.flops_per_video(config, student=False) == per_video


def _hand_parameter_count(units):
    """Per model: lower LSTM (1152 + u) x 4u + 4u, upper (2u + u) x 4u + 4u, MoE
    gates 2u x 50 x 3 (no bias), experts 2u x 50 x 2 + 100; teacher and student."""
    lstm = (1152 + units) * 4 * units + 4 * units + 3 * units * 4 * units + 4 * units
    return 2 * (lstm + 2 * units * 50 * 3 + 2 * units * 50 * 2 + 100)


def test_memory_counts_weights_and_activations_by_hand(tmp_path):
    config = _tiny_lstm_config(units=8)
    per_model = _hand_parameter_count(8) // 2
    assert memory_estimate.parameter_count(config) == 2 * per_model
    # Counted once per config in a process: another width is counted anew.
    assert memory_estimate.parameter_count(_tiny_lstm_config(4)) == _hand_parameter_count(4)
    assert memory_estimate.weight_bytes(config) == 2 * per_model * 4 * 4
    # Frames read and normalised (2 x 300 x 1152), the student's 30; LSTM steps
    # (300 + 20 and 30 + 5) x 11 x 8; chunk states 20 x 16 and 5 x 16; classifier 50 x 11 each.
    values = 2 * 300 * 1152 + 30 * 1152 + 320 * 88 + 35 * 88 + 20 * 16 + 5 * 16 + 2 * 550
    assert memory_estimate.activation_bytes_per_video(config) == 4 * values
    gib = 2**30
    assert memory_estimate.largest_batch(config, gib) == int(
        (0.8 * gib - 2 * per_model * 16) // (4 * values)
    )

    output = tmp_path / "memory.json"
    run_binary("benchmark.py", "--what=memory", "--gpu_memory_gb=16,80", f"--output_json={output}")
    figures = json.loads(output.read_text())
    assert figures["lstm_cells"] == 1024 and figures["parameters"] > 2.5e8
    fits = figures["largest_batch_per_tower"]
    assert 0 < fits["16 GiB"] < fits["80 GiB"]
    assert figures["towers"] == 1 and "CPU:0" in figures["devices"]


def test_deploy_mode_measures_every_export_of_the_student(small_sample, shared_run, tmp_path):
    sample_dir, _ = small_sample
    # Full-integer quantization's GAP change, within 0.01 on this run, was 0.016
    # on the 60-frame one: on 60 videos, one video's rank more or less.
    run = shared_run("all_frames")
    validate = f"{sample_dir}/validate*.tfrecord"
    output = tmp_path / "deploy.json"
    run_binary(
        "benchmark.py",
        "--what=deploy",
        f"--train_dir={run}",
        f"--data_pattern={validate}",
        "--batch_size=16",
        "--latency_videos=4",
        "--representative_batches=1",
        f"--output_json={output}",
    )
    figures = json.loads(output.read_text())
    assert figures["scored"] == "student" and figures["videos"] == 60
    variants = figures["variants"]
    assert set(variants) == {
        "saved_model_float32",
        "saved_model_xla",
        "saved_model_bfloat16",
        "litert_float32",
        "litert_dynamic_range",
        "litert_full_integer",
        "teacher_saved_model_float32",
    }
    for name, row in variants.items():
        assert row["videos_per_s"] > 0 and row["latency_ms_batch_1"] > 0, name
        assert row["peak_rss_mb"] > 0 and row["disk_bytes"] > 0, name
    reference = variants["saved_model_float32"]
    # The float32 export scores the 60 videos as the evaluation binary does.
    metrics = tmp_path / "metrics.json"
    run_binary(
        "validate.py",
        f"--train_dir={run}",
        "--run_once",
        f"--eval_data_pattern={validate}",
        f"--metrics_json={metrics}",
    )
    assert reference["gap"] == pytest.approx(json.loads(metrics.read_text())["gap"], abs=2e-3)
    for name in ("saved_model_xla", "litert_float32"):  # the same model, other runtimes
        assert variants[name]["top_20_agreement_with_float32"] >= 0.999, name
        assert abs(variants[name]["gap_change_from_float32"]) < 1e-4, name
    for name in ("saved_model_bfloat16", "litert_dynamic_range", "litert_full_integer"):
        assert variants[name]["top_20_agreement_with_float32"] >= 0.9, name
        assert abs(variants[name]["gap_change_from_float32"]) <= 0.01, name
    teacher = variants["teacher_saved_model_float32"]
    for name, row in variants.items():
        if name != "teacher_saved_model_float32":
            ratio = row["videos_per_s"] / reference["videos_per_s"]
            assert row["speed_vs_float32"] == pytest.approx(ratio), name
            assert row["speed_vs_teacher"] == pytest.approx(
                row["videos_per_s"] / teacher["videos_per_s"]
            ), name
    assert (
        variants["litert_dynamic_range"]["disk_bytes"]
        < 0.5 * variants["litert_float32"]["disk_bytes"]
    )
    assert variants["litert_float32"]["litert_kernels"] == "xnnpack"
