"""Run directories, data and outputs on other TensorFlow filesystems: ram:// (in
this process) and file:// URIs (across processes) keep everything where the URI
says, nothing in a local folder named after it, and give a local run's results."""

import dataclasses
import os
import pathlib
import shutil
import uuid

import numpy as np
import tensorflow as tf

import testlib
from fewer_frames.config import settings
from fewer_frames.evaluation import evaluation_loop
from fewer_frames.models import model_config
from fewer_frames.run_dirs import checkpoints, run_directory, student_conversion
from fewer_frames.serving import batch_inference, exports
from fewer_frames.system import filesystem
from fewer_frames.training import training_loop
from testlib import PROJECT_ROOT, checkpoint_variables, read_json, read_text, run_binary, run_script

TINY_PARAMS = {
    "lstm_cells": 8,
    "lstm_layers": 1,
    "num_inputs_to_lstm": 10,
    "student_num_inputs_to_lstm": 2,
    "video_level_classifier_model": "MoeModel",
    "moe_num_mixtures": 2,
}


def test_a_ram_run_directory_holds_the_whole_run(small_sample, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # a local folder named after the URI would appear here
    sample_dir, _ = small_sample
    base = f"ram://runs/{uuid.uuid4().hex}"
    train_dir = f"{base}/a"
    requested = model_config.RequestedModel(
        # testlib.FEW_FRAMES: the first 60 frames in 10 chunks, the student's 6 in 2.
        config=model_config.ModelConfig(models=[], model_params=TINY_PARAMS, max_num_frames=60)
    )
    run_settings = settings.RunSettings(
        training=settings.TrainingSettings(
            train_data_pattern=f"{sample_dir}/train*.tfrecord",
            max_steps=2,
            num_epochs=0,
            log_every_steps=1,
            deterministic=False,  # op determinism would stay on in this test process
        ),
        inputs=settings.InputSettings(batch_size=8, num_readers=2),
    )
    assert (
        training_loop.run_training(
            "student_only", train_dir, requested=requested, settings=run_settings
        )
        == 2
    )
    names = set(tf.io.gfile.listdir(train_dir))
    assert {"model_flags.json", "train_flags.json", "checkpoint"} <= names
    assert any(name.startswith("events.out.tfevents.") for name in names)
    assert not any(".tmp-" in name for name in names)
    assert os.listdir(tmp_path) == []
    assert checkpoints.latest_checkpoint(train_dir) == f"{train_dir}/model.ckpt-2"
    # Read back from there: the config, and a resume.
    assert run_directory.saved_config(model_config.RequestedModel(), train_dir).models == [
        "student"
    ]
    more = settings.RunSettings(
        training=settings.TrainingSettings(
            train_data_pattern=f"{sample_dir}/train*.tfrecord",
            max_steps=3,
            num_epochs=0,
            deterministic=False,
        ),
        inputs=run_settings.inputs,
    )
    assert (
        training_loop.run_training("student_only", train_dir, requested=requested, settings=more)
        == 3
    )
    assert os.listdir(tmp_path) == []

    # Evaluation, conversion, fine-tuning, inference and export, all on ram://.
    outputs = _every_output(train_dir, sample_dir, f"{base}/out")
    finetune_dir = f"{base}/finetune"
    student_conversion.convert_to_student(
        run_directory.existing_run(model_config.RequestedModel(), train_dir),
        train_dir,
        finetune_dir,
    )
    tuned = settings.RunSettings(training=dataclasses.replace(more.training, max_steps=4))
    assert training_loop.run_training("finetune", finetune_dir, settings=tuned) == 4
    assert checkpoints.latest_checkpoint(finetune_dir) == f"{finetune_dir}/model.ckpt-4"
    assert {"model_flags.json", "train_flags.json"} <= set(tf.io.gfile.listdir(finetune_dir))
    assert tf.io.gfile.exists(f"{outputs['export']}/saved_model.pb")
    assert tf.io.gfile.glob(f"{outputs['export']}/variables/variables.data-*")
    assert os.listdir(tmp_path) == []

    # The same outputs from a local copy of the run are the same.
    local_dir = tmp_path / "local" / "run"
    for folder, _, files in tf.io.gfile.walk(train_dir):
        target = local_dir / folder[len(train_dir) :].lstrip("/")
        target.mkdir(parents=True, exist_ok=True)
        for name in files:
            tf.io.gfile.copy(f"{folder}/{name}", str(target / name))
    local = _every_output(str(local_dir), sample_dir, str(tmp_path / "local" / "out"))
    where = {"checkpoint", "videos_per_second"}
    assert {key: value for key, value in outputs["metrics"].items() if key not in where} == {
        key: value for key, value in local["metrics"].items() if key not in where
    }
    assert outputs["predictions"] == local["predictions"]
    assert outputs["litert_predictions"] == local["litert_predictions"]
    assert len(outputs["litert_predictions"].splitlines()) == 61  # the header and 60 videos


def _every_output(train_dir, sample_dir, out):
    """The evaluation metrics and the predictions CSV (read back), and the export
    directory, of the run in `train_dir`, written under `out`."""
    pattern = f"{sample_dir}/validate*.tfrecord"
    inputs = settings.InputSettings(batch_size=32)
    metrics_json = f"{out}/metrics.json"
    evaluation_loop.run_evaluation(
        train_dir,
        settings=settings.EvaluationSettings(
            eval_data_pattern=pattern, run_once=True, metrics_json=metrics_json, inputs=inputs
        ),
    )
    config, _ = run_directory.scored_run(model_config.RequestedModel(), train_dir)
    batch_inference.run_inference(config, train_dir, pattern, f"{out}/predictions.csv", 20, inputs)
    exports.saved_model(config, train_dir, f"{out}/export", 20)
    # A LiteRT model there, and predictions from it (read into memory from ram://).
    exports.litert(config, train_dir, f"{out}/litert")
    batch_inference.run_litert_inference(f"{out}/litert", pattern, f"{out}/litert.csv", 20, inputs)
    texts = {}
    for name in ("predictions", "litert"):
        with tf.io.gfile.GFile(f"{out}/{name}.csv") as stream:
            texts[name] = stream.read()
    return {
        "metrics": filesystem.read_json(metrics_json),
        "predictions": texts["predictions"],
        "litert_predictions": texts["litert"],
        "export": f"{out}/export",
    }


def _local(uri):
    return uri[len("file://") :]


def test_every_stage_on_file_uris_equals_the_local_run(
    small_sample, shared_run, tmp_path, monkeypatch
):
    """The five stages, inference, export and the sample generator with every
    directory and pattern given as a file:// URI, across processes: the files land
    where the URIs say, no folder named after a URI appears, and the results equal
    those of the same runs on plain local paths."""
    from conftest import SHARED_RUNS

    sample_dir, _ = small_sample
    root = f"file://{tmp_path}"
    env = {
        "TRAIN_DIR": f"{root}/train",
        "FINETUNE_DIR": f"{root}/finetune",
        "TRAIN_DATA": f"file://{sample_dir}/train*.tfrecord",
        "EVAL_DATA": f"file://{sample_dir}/validate*.tfrecord",
        "LOG_DIR": str(tmp_path / "logs"),
    }
    # Stage 1 with the flags of the shared local run: the same checkpoint, bit for bit.
    run_binary(
        "train.py",
        f"--train_dir={env['TRAIN_DIR']}",
        f"--train_data_pattern={env['TRAIN_DATA']}",
        *SHARED_RUNS["teacher_student"],
    )
    local_run = shared_run("teacher_student")
    trained = checkpoint_variables(_local(env["TRAIN_DIR"]))
    reference = checkpoint_variables(local_run)
    assert trained.keys() == reference.keys()
    for name, value in reference.items():
        np.testing.assert_array_equal(trained[name], value, err_msg=name)
    assert read_json(tmp_path / "train" / "model_flags.json") == read_json(
        os.path.join(local_run, "model_flags.json")
    )
    # Stages 2 to 5 through their scripts.
    run_script("run_validate.sh", env=env)
    run_script("run_convert_model.sh", env=env)
    run_script("run_finetune.sh", "--batch_size=16", "--num_epochs=0", "--max_steps=32", env=env)
    run_script("run_evaluate.sh", env=env)
    validated = read_json(tmp_path / "train" / "validate_metrics.json")
    local_copy = tmp_path / "local_copy"
    shutil.copytree(local_run, local_copy, ignore=shutil.ignore_patterns(".made"))
    run_binary(
        "validate.py",
        f"--train_dir={local_copy}",
        f"--eval_data_pattern={sample_dir}/validate*.tfrecord",
        "--batch_size=512",
        "--top_k=20",
        "--run_once",
        f"--metrics_json={local_copy}/validate_metrics.json",
    )
    assert validated["checkpoint"] == f"{env['TRAIN_DIR']}/model.ckpt-30"
    local_validated = read_json(local_copy / "validate_metrics.json")
    where = {"checkpoint", "eval_data_pattern", "videos_per_second"}
    assert {key: value for key, value in validated.items() if key not in where} == {
        key: value for key, value in local_validated.items() if key not in where
    }
    assert testlib.event_tags(str(tmp_path / "train" / "eval")) >= {"eval/gap"}
    assert checkpoint_variables(str(tmp_path / "finetune"))["global_step"] == 32
    assert read_json(tmp_path / "finetune" / "eval_metrics.json")["global_step"] == 32
    # Inference and export from the file:// run, against inference from the local one.
    run_binary(
        "inference.py",
        f"--train_dir={env['TRAIN_DIR']}",
        f"--input_data_pattern={env['EVAL_DATA']}",
        f"--output_file={root}/out/predictions.csv",
    )
    run_binary(
        "inference.py",
        f"--train_dir={local_copy}",
        f"--input_data_pattern={sample_dir}/validate*.tfrecord",
        f"--output_file={tmp_path}/local_predictions.csv",
    )
    assert read_text(tmp_path / "out" / "predictions.csv") == read_text(
        tmp_path / "local_predictions.csv"
    )
    run_binary("export_model.py", f"--train_dir={env['TRAIN_DIR']}", f"--export_dir={root}/export")
    assert (tmp_path / "export" / "saved_model.pb").is_file()
    assert list((tmp_path / "export" / "variables").glob("variables.data-*"))
    # The sample generator, against the session's sample made on a local path.
    run_binary(
        "make_sample_data.py",
        f"--output_dir={root}/sample",
        "--num_train_files=2",
        "--num_validate_files=1",
        "--num_test_files=1",
        "--videos_per_file=60",
    )
    made = sorted(path.name for path in (tmp_path / "sample").iterdir())
    assert made == sorted(name for name in os.listdir(sample_dir) if name != ".made"), made
    for name in made:
        local = os.path.join(sample_dir, name)
        assert (tmp_path / "sample" / name).read_bytes() == pathlib.Path(local).read_bytes()
    # Nothing named after a URI (a folder "file:") in the working directory, and no
    # temporary left.
    assert not os.path.exists(os.path.join(PROJECT_ROOT, "file:"))
    left = [str(path) for path in tmp_path.rglob("*") if ".tmp" in path.name or path.name[0] == "."]
    assert left == []
