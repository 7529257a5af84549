"""A run directory on another TensorFlow filesystem (here ram://, in this process)
keeps all of the run: checkpoints, events and both JSON files, nothing on local disk."""

import os
import uuid

import tensorflow as tf

import checkpoints
import readers
import run_config
import training

TINY_PARAMS = {
    "lstm_size": 8,
    "num_layers": 1,
    "num_chunks": 20,
    "student_num_chunks": 5,
    "classifier_name": "MoeModel",
    "num_mixtures": 2,
}


def test_a_ram_run_directory_holds_the_whole_run(small_sample, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # a local folder named after the URI would appear here
    sample_dir, _ = small_sample
    train_dir = f"ram://runs/{uuid.uuid4().hex}/a"
    requested = run_config.RequestedModel(
        config=run_config.ModelConfig(models=[], model_params=TINY_PARAMS)
    )
    settings = training.RunSettings(
        training=training.TrainingSettings(
            train_data_pattern=f"{sample_dir}/train*.tfrecord",
            max_steps=2,
            num_epochs=0,
            log_every_steps=1,
            deterministic=False,  # op determinism would stay on in this test process
        ),
        inputs=readers.InputSettings(batch_size=8, num_readers=2),
    )
    assert (
        training.run_training("student_only", train_dir, requested=requested, settings=settings)
        == 2
    )
    names = set(tf.io.gfile.listdir(train_dir))
    assert {"model_flags.json", "train_flags.json", "checkpoint"} <= names
    assert any(name.startswith("events.out.tfevents.") for name in names)
    assert not any(".tmp-" in name for name in names)
    assert os.listdir(tmp_path) == []
    assert checkpoints.latest_checkpoint(train_dir) == f"{train_dir}/model.ckpt-2"
    # Read back from there: the config, and a resume.
    assert run_config.RequestedModel().load(train_dir).models == ["student"]
    more = training.RunSettings(
        training=training.TrainingSettings(
            train_data_pattern=f"{sample_dir}/train*.tfrecord",
            max_steps=3,
            num_epochs=0,
            deterministic=False,
        ),
        inputs=settings.inputs,
    )
    assert training.run_training("student_only", train_dir, requested=requested, settings=more) == 3
    assert os.listdir(tmp_path) == []
