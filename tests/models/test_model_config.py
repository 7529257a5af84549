"""A run's settings: one name each (flag, config field, keyword argument), runs
saved under the former names, and how given settings meet saved ones."""

import os
import shutil

import pytest

from fewer_frames.models import model_config
from fewer_frames.run_dirs import run_files
from fewer_frames.system import filesystem
from fewer_frames.system.errors import UserError
from testlib import PROJECT_ROOT, read_json, run_binary

EARLIER_MODEL_FLAGS = os.path.join(PROJECT_ROOT, "tests", "data", "earlier_model_flags.json")


def _requested(**given):
    """What a command line giving `given` (flag name: value) asks for."""
    values = {**model_config.ModelConfig(models=[]).settings(), **given}
    return model_config.RequestedModel(
        config=model_config.ModelConfig.from_settings([], values),
        values=values,
        given=frozenset(given),
    )


def test_an_earlier_model_flags_json_reads_under_todays_names():
    config = run_files.read_model_config(EARLIER_MODEL_FLAGS)
    # By hand, from the committed file: each former name under today's.
    assert config.settings() == {
        "model": "HierarchicalLstmModel",
        "frame_features": True,
        "feature_names": ["rgb", "audio"],
        "feature_sizes": [1024, 128],
        "dataset_version": "2018",
        "num_classes": 3862,
        "max_num_frames": 300,
        "frame_selection": "uniform",
        "every_n": 10,
        "num_student_frames": 0,
        "frame_selection_seed": 1234,
        "stride_frame_count": "reached",
        "frame_jitter": 0,
        "video_level_classifier_model": "MoeModel",
        "moe_num_mixtures": 2,
        "lstm_cells": 16,
        "lstm_layers": 2,
        "num_inputs_to_lstm": 20,
        "student_num_inputs_to_lstm": 5,
        "fold_chunks": True,
    }
    assert config.models == ["teacher", "student"]


def test_a_misspelt_hyperparameter_in_model_flags_json_names_the_file(tmp_path):
    values = read_json(EARLIER_MODEL_FLAGS)
    values["model_params"]["lstm_cels"] = 8
    path = tmp_path / "model_flags.json"
    filesystem.write_json(str(path), values)
    with pytest.raises(UserError, match=f"{path}: .*unknown keyword argument\\(s\\) lstm_cels"):
        run_files.read_model_config(str(path))


def test_given_settings_meet_saved_ones_by_name():
    saved = run_files.read_model_config(EARLIER_MODEL_FLAGS)
    # The saved value given again, or a setting that shapes no variable: accepted.
    assert _requested(lstm_cells=16).run_config(saved.models, saved, "run") == saved
    unfolded = _requested(fold_chunks=False).run_config(saved.models, saved, "run")
    assert unfolded.model_params.fold_chunks is False
    assert unfolded.settings() == {**saved.settings(), "fold_chunks": False}
    # Not given: the saved value, whatever the flag's default.
    assert _requested().run_config(saved.models, saved, "run").model_params.lstm_cells == 16
    # A conflict names every flag, with both values.
    with pytest.raises(UserError) as error:
        _requested(lstm_cells=8, max_num_frames=200).run_config(saved.models, saved, "run")
    assert "--lstm_cells: saved 16, given 8; --max_num_frames: saved 300, given 200" in str(
        error.value
    )


def test_a_run_of_another_family_meets_that_familys_given_settings():
    saved = model_config.ModelConfig(
        models=["teacher"], model="NetVLADModel", model_params={"netvlad_cluster_size": 8}
    )
    # --model is not given: the saved family's settings are compared, not --model's default's.
    assert _requested(netvlad_cluster_size=8).run_config(["teacher"], saved, "run") == saved
    with pytest.raises(UserError, match="--netvlad_cluster_size: saved 8, given 16"):
        _requested(netvlad_cluster_size=16).run_config(["teacher"], saved, "run")
    with pytest.raises(UserError, match="--model: saved 'NetVLADModel', given 'LstmModel'"):
        _requested(model="LstmModel").run_config(["teacher"], saved, "run")


def test_a_setting_that_shapes_no_variable_is_given_to_an_existing_run(
    small_sample, shared_run, tmp_path
):
    """--nofold_chunks (one recurrence per chunk, as the original graph) evaluates the
    run saved with folded chunks, to the same metrics."""
    sample_dir, _ = small_sample
    run = str(tmp_path / "run")
    shutil.copytree(shared_run("teacher_student"), run)
    metrics = {}
    for flag in ("--fold_chunks", "--nofold_chunks"):
        path = str(tmp_path / f"{flag}.json")
        run_binary(
            "validate.py",
            f"--train_dir={run}",
            "--run_once",
            f"--eval_data_pattern={sample_dir}/validate*.tfrecord",
            f"--metrics_json={path}",
            flag,
        )
        metrics[flag] = read_json(path)
    folded, per_chunk = metrics["--fold_chunks"], metrics["--nofold_chunks"]
    for name in ("gap", "hit_at_one", "perr", "map", "loss"):
        assert folded[name] == pytest.approx(per_chunk[name], abs=1e-6), name
    assert read_json(f"{run}/model_flags.json")["model_params"]["fold_chunks"] is True
