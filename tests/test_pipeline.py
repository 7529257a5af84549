"""The five stages through their real entry points: binaries with flags and bash scripts."""

import json
import os
import re
import shutil
import subprocess
import time

import numpy as np
import pytest

from fewer_frames.run_dirs import checkpoints, run_directory
from testlib import (
    PROJECT_ROOT,
    TINY_MODEL,
    binary_launcher,
    checkpoint_variables,
    class_prior_gap,
    event_tags,
    read_json,
    read_text,
    run_binary,
    run_script,
)

TINY_TRAINING = ["--batch_size=16", "--num_epochs=0", "--log_every_steps=2", "--num_readers=2"]


def train(sample_dir, train_dir, *flags, script="train.py", check=True):
    return run_binary(
        script,
        f"--train_dir={train_dir}",
        f"--train_data_pattern={sample_dir}/train*.tfrecord",
        *TINY_MODEL,
        *TINY_TRAINING,
        *flags,
        check=check,
    )


def evaluate(sample_dir, train_dir, metrics_json, *flags, script="validate.py", check=True):
    return run_binary(
        script,
        f"--train_dir={train_dir}",
        f"--eval_data_pattern={sample_dir}/validate*.tfrecord",
        f"--metrics_json={metrics_json}",
        "--run_once",
        "--batch_size=64",
        *flags,
        check=check,
    )


def test_five_scripts_end_to_end(small_sample, tmp_path):
    """The CI smoke test: every stage script on the sample, and what each produced."""
    sample_dir, _ = small_sample
    env = {
        "TRAIN_DIR": str(tmp_path / "model_HLSTM_TeaStud_every10_train"),
        "FINETUNE_DIR": str(tmp_path / "model_HLSTM_TeaStud_every10_finetune"),
        "LOG_DIR": str(tmp_path / "logs"),
        "YT8M_DIR": sample_dir,
    }
    train_dir, finetune_dir = env["TRAIN_DIR"], env["FINETUNE_DIR"]
    run_script("run_train.sh", *TINY_MODEL, *TINY_TRAINING, "--max_steps=6", env=env)
    run_script("run_validate.sh", env=env)
    run_script("run_convert_model.sh", env=env)
    again = run_script("run_convert_model.sh", env=env, check=False)
    assert again.returncode == 1 and "add --overwrite to replace it" in again.stdout
    converted = checkpoint_variables(finetune_dir)
    converted_name = checkpoints.latest_checkpoint(finetune_dir)
    converted_json = str(tmp_path / "converted.json")
    evaluate(sample_dir, finetune_dir, converted_json, script="eval_finetune.py")
    run_script("run_finetune.sh", *TINY_TRAINING, "--max_steps=10", env=env)
    run_script("run_evaluate.sh", env=env)

    # Stage 1: a teacher-student checkpoint at step 6 with both models and their optimizers.
    trained = checkpoint_variables(train_dir)
    assert trained["global_step"] == 6
    kernel = "RNN_L1/rnn/multi_rnn_cell/cell_0/basic_lstm_cell/kernel"
    assert trained[f"model/{kernel}"].shape == (1152 + 8, 32)
    assert trained[f"model_student/{kernel}"].shape == (1152 + 8, 32)
    assert any(name.endswith("/Adam") for name in trained)
    train_log = read_text(os.path.join(env["LOG_DIR"], "output_HLSTM_TeaStud_every10_after_Nepc"))
    # Both models' batch metrics in the line, as the student's and the teacher's.
    assert re.search(
        r"training step 6\| Student_Hit@1: [0-9.]+\| Student_PERR: [0-9.]+\| Student_GAP: "
        r"[0-9.]+\| Teacher_Hit@1: [0-9.]+\| Teacher_PERR: [0-9.]+\| Teacher_GAP: [0-9.]+\| "
        r"Teacher_Loss: ",
        train_log,
    )
    assert "| L_CE: " in train_log
    assert {
        "losses/teacher_loss",
        "losses/rep_loss",
        "losses/pred_loss",
        "losses/ce_loss",
        "losses/teacher_total_loss",
        "losses/student_total_loss",
        "learning_rate",
        "train/student_hit_at_one",
        "train/teacher_hit_at_one",
        "train/student_perr",
        "train/teacher_gap",
        "train/examples_per_second",
    } <= event_tags(train_dir)

    # Stage 2: student metrics on the whole validate split, with L_REP.
    validated = read_json(os.path.join(train_dir, "validate_metrics.json"))
    assert validated["num_examples"] == 60 and validated["global_step"] == 6
    for key in ("hit_at_one", "perr", "gap", "map", "loss", "rep_loss"):
        assert np.isfinite(validated[key]), key
    assert {"eval/gap", "eval/map", "eval/hit_at_one", "eval/rep_loss"} <= event_tags(
        os.path.join(train_dir, "eval")
    )
    assert os.path.exists(
        os.path.join(env["LOG_DIR"], "validate_HLSTM_TeaStud_every10_train_after_Nepc")
    )

    # Stage 3: only the student's model variables and the global step, names unchanged.
    student_names = {n for n in trained if n.startswith("model_student/") and "Adam" not in n}
    assert set(converted) == student_names | {"global_step"}
    assert converted["global_step"] == 6
    # Named by its step, as every checkpoint (evaluators that follow a run read the name).
    assert converted_name.endswith("model.ckpt-6")
    for name in student_names:
        np.testing.assert_array_equal(converted[name], trained[name])
    # Before fine-tuning, the converted student scores exactly as in the validate stage.
    before = read_json(converted_json)
    for key in ("num_examples", "hit_at_one", "perr", "gap", "map", "loss", "global_step"):
        assert before[key] == pytest.approx(validated[key], rel=1e-6), key

    # Stages 4 and 5: fine-tuning continues the global step; the evaluation reads it.
    tuned = checkpoint_variables(finetune_dir)
    assert tuned["global_step"] == 10
    assert not np.array_equal(
        tuned[f"model_student/{kernel}"], converted[f"model_student/{kernel}"]
    )
    assert "losses/ce_loss" in event_tags(finetune_dir)
    final = read_json(os.path.join(finetune_dir, "eval_metrics.json"))
    assert final["global_step"] == 10 and final["num_examples"] == 60
    assert "rep_loss" not in final
    finetune_log = read_text(
        os.path.join(env["LOG_DIR"], "output_HLSTM_TeaStud_every10_finetune_after_Nepc")
    )
    assert "training step 10|" in finetune_log and "Teacher_Loss" not in finetune_log


def test_scripts_stop_clearly_on_missing_inputs(tmp_path):
    env = {
        "TRAIN_DIR": str(tmp_path / "train"),
        "FINETUNE_DIR": str(tmp_path / "finetune"),
        "LOG_DIR": str(tmp_path / "logs"),
        "YT8M_DIR": str(tmp_path / "empty"),
    }
    result = run_script("run_train.sh", env=env, check=False)
    assert result.returncode != 0 and "no training data matches" in result.stderr
    for script, hint in [
        ("run_validate.sh", "run run_train.sh first"),
        ("run_convert_model.sh", "run run_train.sh first"),
        ("run_finetune.sh", "run run_convert_model.sh first"),
        ("run_evaluate.sh", "run run_convert_model.sh and run_finetune.sh first"),
    ]:
        result = run_script(script, env=env, check=False)
        assert result.returncode != 0, script
        assert "no checkpoint in" in result.stderr and hint in result.stderr, script


def test_resume_refuse_and_overwrite(small_sample, tmp_path):
    sample_dir, _ = small_sample
    train_dir = str(tmp_path / "run")
    train(sample_dir, train_dir, "--max_steps=3", "--training_mode=student_only")
    result = train(sample_dir, train_dir, "--max_steps=5", "--training_mode=student_only")
    assert "Resumed from" in result.stderr
    assert "Resuming with other training settings: training.max_steps: 3 -> 5" in result.stderr
    assert checkpoint_variables(train_dir)["global_step"] == 5
    saved = read_json(os.path.join(train_dir, "model_flags.json"))
    assert saved["models"] == ["student"] and saved["model_params"]["lstm_cells"] == 8

    changed = train(
        sample_dir,
        train_dir,
        "--max_steps=7",
        "--lstm_cells=16",
        "--training_mode=student_only",
        check=False,
    )
    assert changed.returncode == 1
    assert "--lstm_cells: saved 8, given 16" in changed.stderr
    other_mode = train(sample_dir, train_dir, "--max_steps=7", check=False)
    assert other_mode.returncode == 1 and "holds student, but this run needs" in other_mode.stderr

    refused = train(
        sample_dir,
        train_dir,
        "--start_new_model",
        "--training_mode=student_only",
        "--max_steps=6",  # a refusal that fails must not train forever (--num_epochs=0)
        check=False,
    )
    assert refused.returncode == 1 and "add --overwrite" in refused.stderr
    assert checkpoint_variables(train_dir)["global_step"] == 5
    train(
        sample_dir,
        train_dir,
        "--start_new_model",
        "--overwrite",
        "--max_steps=2",
        "--rep_loss_weight=2",
        "--pred_loss=mse",
    )
    assert checkpoint_variables(train_dir)["global_step"] == 2
    assert read_json(os.path.join(train_dir, "model_flags.json"))["models"] == [
        "teacher",
        "student",
    ]
    # What trains the run is saved beside what shapes it.
    settings = read_json(os.path.join(train_dir, "train_flags.json"))
    assert settings["mode"] == "parallel"
    assert settings["distillation"]["rep_loss_weight"] == 2.0
    assert settings["distillation"]["pred_loss"] == "mse"
    assert settings["training"]["max_steps"] == 2 and settings["training"]["overwrite"]
    assert settings["inputs"]["batch_size"] == 16


def test_serial_mode_keeps_the_teacher_frozen(small_sample, shared_run, tmp_path):
    sample_dir, _ = small_sample
    teacher_dir, serial_dir = shared_run("teacher"), str(tmp_path / "serial")
    missing = train(sample_dir, serial_dir, "--max_steps=3", "--training_mode=serial", check=False)
    assert missing.returncode == 1 and "needs --teacher_dir" in missing.stderr
    result = train(
        sample_dir,
        serial_dir,
        "--max_steps=4",
        "--training_mode=serial",
        f"--teacher_dir={teacher_dir}",
    )
    assert "Restored the frozen teacher" in result.stderr
    teacher, serial = checkpoint_variables(teacher_dir), checkpoint_variables(serial_dir)
    teacher_weights = [n for n in teacher if n.startswith("model/") and "Adam" not in n]
    assert teacher_weights
    for name in teacher_weights:
        np.testing.assert_array_equal(serial[name], teacher[name])
    assert not any(name.startswith("model/") and "Adam" in name for name in serial)
    assert serial["global_step"] == 4 and teacher["global_step"] == 30
    evaluated = str(tmp_path / "teacher.json")
    evaluate(sample_dir, serial_dir, evaluated, "--eval_model=teacher")
    assert read_json(evaluated)["model"] == "teacher"


def test_teacher_only_on_real_video_level_features(real_data_dir, tmp_path):
    train_dir = str(tmp_path / "video_level")
    pattern = os.path.join(real_data_dir, "2018_video_level", "validate000[0-7].tfrecord")
    run_binary(
        "train.py",
        f"--train_dir={train_dir}",
        f"--train_data_pattern={pattern}",
        "--training_mode=teacher_only",
        "--frame_features=False",
        "--feature_names=mean_rgb, mean_audio",
        "--model=LogisticModel",
        "--batch_size=128",
        "--num_epochs=2",
        "--base_learning_rate=0.01",
        "--log_every_steps=10",
    )
    metrics = str(tmp_path / "metrics.json")
    run_binary(
        "validate.py",
        f"--train_dir={train_dir}",
        f"--eval_data_pattern={real_data_dir}/2018_video_level/validate000[89].tfrecord",
        f"--metrics_json={metrics}",
        "--run_once",
    )
    result = read_json(metrics)
    assert result["model"] == "teacher" and result["num_examples"] > 500
    # Well above a trivial model (the training set's class frequencies: GAP 0.044).
    prior = class_prior_gap(
        pattern, pattern.replace("[0-7]", "[89]"), num_classes=3862, frame_level=False
    )
    assert result["gap"] > prior + 0.3, (result["gap"], prior)


def test_validate_follows_new_checkpoints(small_sample, tmp_path):
    sample_dir, _ = small_sample
    train_dir = str(tmp_path / "run")
    metrics = tmp_path / "metrics.json"
    train(sample_dir, train_dir, "--max_steps=2", "--training_mode=student_only")
    command = [
        binary_launcher(),
        os.path.join(PROJECT_ROOT, "code_student_uniform", "validate.py"),
        f"--train_dir={train_dir}",
        f"--eval_data_pattern={sample_dir}/validate*.tfrecord",
        f"--metrics_json={metrics}",
        "--eval_interval_secs=1",
    ]
    follower = subprocess.Popen(
        command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    try:
        seen = wait_for_step(metrics, 2, follower)
        train(sample_dir, train_dir, "--max_steps=4", "--training_mode=student_only")
        seen = wait_for_step(metrics, 4, follower)
    finally:
        follower.kill()
        follower.wait()
    assert seen["global_step"] == 4 and seen["num_examples"] == 60


def wait_for_step(path, step, process, timeout=120):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"validate.py exited early:\n{process.stderr.read()[-4000:]}")
        if path.exists():
            values = json.loads(path.read_text())
            if values["global_step"] == step:
                return values
        time.sleep(0.5)
    raise AssertionError(f"no evaluation of step {step} within {timeout} s")


def test_binaries_report_missing_runs(small_sample, tmp_path):
    sample_dir, _ = small_sample
    missing = str(tmp_path / "nothing")
    result = evaluate(sample_dir, missing, str(tmp_path / "m.json"), check=False)
    assert result.returncode == 1 and "holds no trained run" in result.stderr
    assert "Traceback" not in result.stderr
    result = train(sample_dir, missing, script="train_finetune.py", check=False)
    assert result.returncode == 1 and "run train_convert_model.py" in result.stderr
    result = run_binary("train_convert_model.py", f"--train_dir={missing}", check=False)
    assert result.returncode == 1 and "holds no trained run" in result.stderr


def test_default_finetune_dir_and_progress_lines(small_sample, shared_run, tmp_path):
    sample_dir, _ = small_sample
    train_dir = str(tmp_path / "model_x_train")
    shutil.copytree(shared_run("teacher_student"), train_dir)
    run_binary("train_convert_model.py", f"--train_dir={train_dir}")
    finetune_dir = str(tmp_path / "model_x_finetune")
    assert read_json(os.path.join(finetune_dir, "model_flags.json"))["models"] == ["student"]
    result = evaluate(
        sample_dir,
        finetune_dir,
        str(tmp_path / "m.json"),
        "--progress_every_secs=0",
        "--batch_size=16",
        script="eval_finetune.py",
    )
    assert "evaluated 16 videos" in result.stderr and "videos/s" in result.stderr
    assert "evaluated 60 videos" in result.stderr


def test_default_finetune_dir_follows_the_seed():
    assert run_directory.default_finetune_dir("./model_HLSTM_TeaStud_every10_train/") == (
        "model_HLSTM_TeaStud_every10_finetune"
    )
    assert run_directory.default_finetune_dir("/runs/train/run_a") == "/runs/train/run_a_finetune"
    # A URI keeps its scheme's double slash (os.path.normpath would make gs:/b).
    assert run_directory.default_finetune_dir("gs://b/runs/x_train/") == "gs://b/runs/x_finetune"
