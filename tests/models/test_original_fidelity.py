"""Fidelity to the original code, with its own TF 1.x graph as the oracle.

`original_graph.py` builds the original teacher-student graph from the
original's cell classes in a subprocess (TF_USE_LEGACY_KERAS=1, tf-keras),
fills it with random weights, and leaves run directories as the original code
did: checkpoints with an int32 global step and no model_flags.json. The
project's binaries and scripts must read those directories and compute the
same predictions, representations and losses.
"""

import glob
import importlib.util
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from testlib import (
    PROJECT_ROOT,
    checkpoint_variables,
    event_values,
    made_once,
    read_csv,
    read_json,
    read_text,
    run_binary,
    run_script,
    shared_root,
)

# Frame counts around the chunk and stride edges; 350 is capped to 300.
VIDEO_LENGTHS = [1, 9, 10, 15, 16, 61, 87, 150, 208, 299, 300, 350]
NUM_CLASSES = 3862
ORIGINAL_STEP = 40
# Settings the original directory was trained with, given on the command line.
MODEL_FLAGS = ["--lstm_cells=16", "--lstm_layers=2"]
# model_flags.json as earlier versions of this project wrote it for that model:
# the settings' former names, no stride_frame_count.
EARLIER_MODEL_FLAGS = os.path.join(PROJECT_ROOT, "tests", "data", "earlier_model_flags.json")


def write_videos(path, seed=3):
    rng = np.random.default_rng(seed)
    with tf.io.TFRecordWriter(path) as writer:
        for index, length in enumerate(VIDEO_LENGTHS):
            example = tf.train.SequenceExample()
            context = example.context.feature
            context["id"].bytes_list.value.append(f"v{index:02d}".encode())
            labels = rng.choice(NUM_CLASSES, size=rng.integers(1, 5), replace=False)
            context["labels"].int64_list.value.extend(sorted(int(label) for label in labels))
            for name, size in (("rgb", 1024), ("audio", 128)):
                frames = example.feature_lists.feature_list[name]
                for codes in rng.integers(0, 256, (length, size), dtype=np.uint8):
                    frames.feature.add().bytes_list.value.append(codes.tobytes())
            writer.write(example.SerializeToString())


@pytest.fixture(scope="session")
def original(tmp_path_factory):
    """Run directories of the original code and what its graph computed (made once
    per session; the tests copy a run before writing into it)."""
    if importlib.util.find_spec("tf_keras") is None:
        pytest.skip("tf-keras (requirements-dev.txt) is not installed")
    root = shared_root(tmp_path_factory) / "original"
    data = str(root / "videos.tfrecord")
    with made_once(root) as make:
        if make:
            root.mkdir(parents=True)
            write_videos(data)
            result = subprocess.run(
                [
                    sys.executable,
                    os.path.join(PROJECT_ROOT, "tests", "original_graph.py"),
                    f"--data={data}",
                    f"--output_dir={root}",
                    f"--num_classes={NUM_CLASSES}",
                    f"--global_step={ORIGINAL_STEP}",
                ],
                capture_output=True,
                text=True,
                env=dict(os.environ, TF_USE_LEGACY_KERAS="1"),
                timeout=600,
            )
            assert result.returncode == 0, result.stderr[-6000:]
    expected = dict(np.load(root / "expected.npz"))
    expected["ids"] = [video_id.decode() for video_id in expected["ids"]]
    return {
        "data": data,
        "teacher_student": str(root / "teacher_student"),
        "student_only": str(root / "student_only"),
        "expected": expected,
    }


def copy_run(source, target):
    shutil.copytree(source, target)
    return str(target)


def top_scores(predictions, k=20):
    order = np.argsort(-predictions, axis=1)[:, :k]
    return order, np.take_along_axis(predictions, order, axis=1)


def assert_csv_matches(path, ids, predictions, tolerance=1e-5):
    """Each video's top-20 labels and scores in the CSV equal the original's."""
    rows = read_csv(path)
    assert sorted(rows) == sorted(ids)
    order, scores = top_scores(predictions)
    worst = 0.0
    for video_id, labels, expected in zip(ids, order, scores, strict=True):
        got_labels, got_scores = rows[video_id]
        worst = max(worst, float(np.max(np.abs(got_scores - expected))))
        # Labels whose scores tie within the tolerance may swap places.
        assert set(got_labels[expected - expected[-1] > tolerance]) <= set(labels), video_id
    assert worst < tolerance, worst


def infer(run_dir, data, output, *flags):
    run_binary(
        "inference.py",
        f"--train_dir={run_dir}",
        f"--input_data_pattern={data}",
        f"--output_file={output}",
        "--top_k=20",
        *MODEL_FLAGS,
        *flags,
    )
    return output


@pytest.mark.parametrize(
    "run, model",
    [("teacher_student", "teacher"), ("teacher_student", "student"), ("student_only", "student")],
)
def test_predictions_equal_the_original(original, run, model, tmp_path):
    expected = original["expected"]
    output = infer(
        original[run], original["data"], str(tmp_path / "p.csv"), f"--eval_model={model}"
    )
    assert_csv_matches(output, expected["ids"], expected[f"{model}_predictions"])


def test_the_reached_frame_count_is_not_the_original(original, tmp_path):
    # --stride_frame_count=reached gives the student more frames of some videos:
    # its scores then differ from the original's, which the comparison must see.
    expected = original["expected"]
    output = infer(
        original["teacher_student"],
        original["data"],
        str(tmp_path / "p.csv"),
        "--stride_frame_count=reached",
    )
    with pytest.raises(AssertionError):
        assert_csv_matches(output, expected["ids"], expected["student_predictions"])
    assert expected["student_num_frames"].tolist() == [0, 0, 1, 1, 1, 6, 8, 15, 20, 29, 30, 30]

    # A run directory of an earlier version of this project (its model_flags.json
    # predates the setting) keeps the rule it was trained with: reached.
    earlier = copy_run(original["teacher_student"], tmp_path / "earlier")
    shutil.copy(EARLIER_MODEL_FLAGS, os.path.join(earlier, "model_flags.json"))
    again = infer(earlier, original["data"], str(tmp_path / "earlier.csv"))
    assert read_text(again) == read_text(output)


def test_export_of_an_original_run_equals_the_original(original, tmp_path):
    export_dir = str(tmp_path / "export")
    run_binary(
        "export_model.py",
        f"--train_dir={original['teacher_student']}",
        f"--export_dir={export_dir}",
        "--top_k=20",
        *MODEL_FLAGS,
    )
    records = list(tf.compat.v1.io.tf_record_iterator(original["data"]))
    with tf.compat.v1.Session(graph=tf.Graph()) as session:
        meta = tf.compat.v1.saved_model.load(session, ["serve"], export_dir)
        signature = meta.signature_def["serving_default"]
        ids, scores = session.run(
            [signature.outputs["video_id"].name, signature.outputs["predictions"].name],
            {signature.inputs["input_batch_unparsed"].name: records},
        )
    expected = original["expected"]
    assert [video_id.decode() for video_id in ids] == expected["ids"]
    _, expected_scores = top_scores(expected["student_predictions"])
    np.testing.assert_allclose(scores, expected_scores, atol=1e-5)


def test_losses_and_representation_distance_equal_the_original(original, tmp_path):
    expected = original["expected"]
    run_dir = copy_run(original["teacher_student"], tmp_path / "run")
    metrics = str(tmp_path / "validate.json")
    run_binary(
        "validate.py",
        f"--train_dir={run_dir}",
        f"--eval_data_pattern={original['data']}",
        f"--metrics_json={metrics}",
        "--run_once",
        *MODEL_FLAGS,
    )
    validated = read_json(metrics)
    assert validated["global_step"] == ORIGINAL_STEP
    assert validated["num_examples"] == len(VIDEO_LENGTHS)
    np.testing.assert_allclose(validated["rep_loss"], expected["rep_loss"], rtol=1e-5)
    np.testing.assert_allclose(validated["loss"], expected["ce_loss"], rtol=1e-5)

    # One training step resumed from the original directory, its one batch
    # holding every video: the losses it logs are those of the restored weights.
    # --rep_loss_weight=2 restores the original's total (it added L_rep twice).
    env = {"TRAIN_DIR": run_dir, "TRAIN_DATA": original["data"], "LOG_DIR": str(tmp_path)}
    run_script(
        "run_train.sh",
        *MODEL_FLAGS,
        f"--max_steps={ORIGINAL_STEP + 1}",
        "--log_every_steps=1",
        "--rep_loss_weight=2",
        env=env,
    )
    logged = {tag: steps[ORIGINAL_STEP + 1] for tag, steps in event_values(run_dir).items()}
    for tag, key in (
        ("losses/rep_loss", "rep_loss"),
        ("losses/pred_loss", "pred_loss"),
        ("losses/ce_loss", "ce_loss"),
        ("losses/teacher_loss", "teacher_ce_loss"),
        ("losses/teacher_total_loss", "teacher_total_loss"),
        ("losses/student_total_loss", "student_total_loss"),
    ):
        np.testing.assert_allclose(logged[tag], expected[key], rtol=1e-5, err_msg=tag)
    with open(os.path.join(tmp_path, "output_HLSTM_TeaStud_every10_after_Nepc")) as handle:
        assert "reading it as a run of the original code" in handle.read()
    # From then on the directory is in this project's format.
    assert read_json(os.path.join(run_dir, "model_flags.json"))["stride_frame_count"] == "original"
    resumed = checkpoint_variables(run_dir)
    assert resumed["global_step"] == ORIGINAL_STEP + 1
    assert resumed["global_step"].dtype == np.int64


def test_original_directories_through_the_stage_scripts(original, tmp_path):
    data = original["data"]
    train_dir = copy_run(original["teacher_student"], tmp_path / "train")
    finetune_dir = str(tmp_path / "finetune")
    env = {
        "TRAIN_DIR": train_dir,
        "FINETUNE_DIR": finetune_dir,
        "TRAIN_DATA": data,
        "EVAL_DATA": data,
        "LOG_DIR": str(tmp_path / "logs"),
    }
    run_script("run_validate.sh", *MODEL_FLAGS, env=env)
    assert read_json(os.path.join(train_dir, "validate_metrics.json"))["global_step"] == 40

    run_script("run_convert_model.sh", *MODEL_FLAGS, env=env)
    converted = checkpoint_variables(finetune_dir)
    assert {name.split("/")[0] for name in converted} == {"model_student", "global_step"}
    original_student = checkpoint_variables(original["teacher_student"])
    for name, value in converted.items():
        np.testing.assert_array_equal(value, original_student[name], err_msg=name)

    run_script("run_finetune.sh", *MODEL_FLAGS, "--max_steps=42", "--batch_size=6", env=env)
    run_script("run_evaluate.sh", *MODEL_FLAGS, env=env)
    evaluated = read_json(os.path.join(finetune_dir, "eval_metrics.json"))
    assert evaluated["global_step"] == 42 and evaluated["num_examples"] == len(VIDEO_LENGTHS)

    # The student-only directory of the original's own convert stage.
    student_dir = copy_run(original["student_only"], tmp_path / "student_only")
    env = dict(env, FINETUNE_DIR=student_dir, LOG_DIR=str(tmp_path / "student_logs"))
    run_script("run_finetune.sh", *MODEL_FLAGS, "--max_steps=41", env=env)
    run_script("run_evaluate.sh", *MODEL_FLAGS, env=env)
    assert read_json(os.path.join(student_dir, "eval_metrics.json"))["global_step"] == 41
    assert glob.glob(os.path.join(student_dir, "model.ckpt-41.index"))


def test_run_time_never_imports_tf_keras():
    # Build a teacher-student graph the way the binaries do; tf-keras stays out.
    code = (
        "import sys, tensorflow as tf; tf.compat.v1.disable_eager_execution()\n"
        "import train, validate, train_convert_model, train_finetune, eval_finetune\n"
        "import inference, export_model\n"
        "from fewer_frames.models import model_graph\n"
        "from fewer_frames.config import command_line\n"
        "from absl import flags; flags.FLAGS(['x', '--lstm_cells=4', '--lstm_layers=1'])\n"
        "config = command_line.requested_model().new_config(['teacher', 'student'])\n"
        "model_graph.build_models(config, model_graph.placeholder_batch(config))\n"
        "assert 'tf_keras' not in sys.modules, 'tf_keras imported'\n"
        "print('ok')\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        cwd=os.path.join(PROJECT_ROOT, "code_student_uniform"),
        timeout=300,
    )
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr[-3000:]
