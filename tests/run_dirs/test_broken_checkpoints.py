"""Broken checkpoint files: named in one line, skipped for the newest intact one when
following a run, an error when named explicitly; a broken index is rebuilt."""

import os
import shutil

import numpy as np
import pytest
import tensorflow as tf

from testlib import TINY_RUN, read_json, run_binary


@pytest.fixture(scope="module")
def three_checkpoints(small_sample, tmp_path_factory):
    """A student-only run with checkpoints at steps 1, 2 and 3."""
    sample_dir, _ = small_sample
    train_dir = tmp_path_factory.mktemp("three") / "run"
    run_binary(
        "train.py",
        f"--train_dir={train_dir}",
        f"--train_data_pattern={sample_dir}/train*.tfrecord",
        "--training_mode=student_only",
        *TINY_RUN,
        "--max_steps=3",
        "--checkpoint_every_steps=1",
    )
    return train_dir


def _copy(source, tmp_path):
    target = tmp_path / "run"
    shutil.copytree(source, target)
    return target


def _truncate(path):
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _validate(sample_dir, train_dir, tmp_path, *flags, check=True):
    metrics = tmp_path / f"metrics{len(list(tmp_path.glob('metrics*')))}.json"
    result = run_binary(
        "validate.py",
        f"--train_dir={train_dir}",
        f"--eval_data_pattern={sample_dir}/validate*.tfrecord",
        "--run_once",
        f"--metrics_json={metrics}",
        *flags,
        check=check,
    )
    return result, (read_json(metrics) if metrics.exists() else None)


def test_a_truncated_checkpoint_is_skipped_or_named(three_checkpoints, small_sample, tmp_path):
    sample_dir, _ = small_sample
    train_dir = _copy(three_checkpoints, tmp_path)
    _truncate(train_dir / "model.ckpt-3.data-00000-of-00001")
    broken = f"{train_dir}/model.ckpt-3"

    result, metrics = _validate(sample_dir, train_dir, tmp_path)
    assert f"Skipped checkpoint {broken}: " in result.stderr
    assert "evaluation of student at global step 2" in result.stderr
    assert metrics["global_step"] == 2 and metrics["checkpoint"].endswith("model.ckpt-2")

    # Named explicitly, it stops with one line that names it.
    result, metrics = _validate(
        sample_dir, train_dir, tmp_path, f"--checkpoint_path={broken}", check=False
    )
    assert result.returncode == 1 and metrics is None
    assert f"ERROR: cannot read checkpoint {broken}: Read less bytes than requested" in (
        result.stderr
    )
    assert "Traceback" not in result.stderr and result.stderr.count("ERROR:") == 1
    named = run_binary(
        "inference.py",
        f"--train_dir={train_dir}",
        f"--checkpoint_path={broken}",
        f"--input_data_pattern={sample_dir}/test*.tfrecord",
        f"--output_file={tmp_path / 'p.csv'}",
        check=False,
    )
    assert named.returncode == 1 and f"cannot read checkpoint {broken}" in named.stderr
    assert not (tmp_path / "p.csv").exists()
    # An older checkpoint named explicitly is used.
    _, metrics = _validate(
        sample_dir, train_dir, tmp_path, f"--checkpoint_path={train_dir}/model.ckpt-1"
    )
    assert metrics["global_step"] == 1

    # Training resumes from the newest intact checkpoint.
    resumed = run_binary(
        "train.py",
        f"--train_dir={train_dir}",
        f"--train_data_pattern={sample_dir}/train*.tfrecord",
        "--training_mode=student_only",
        *TINY_RUN,
        "--max_steps=4",
    )
    assert f"Skipped checkpoint {broken}: " in resumed.stderr
    assert f"Resumed from {train_dir}/model.ckpt-2" in resumed.stderr
    assert "training step 3|" in resumed.stderr or "Final checkpoint at global step 4" in (
        resumed.stderr
    )


def test_a_missing_index_and_a_garbage_checkpoint_file(three_checkpoints, small_sample, tmp_path):
    sample_dir, _ = small_sample
    train_dir = _copy(three_checkpoints, tmp_path)
    os.remove(train_dir / "model.ckpt-3.index")
    result, metrics = _validate(sample_dir, train_dir, tmp_path)
    assert "it names model.ckpt-3, which is not there" in result.stderr
    assert metrics["global_step"] == 2

    (train_dir / "checkpoint").write_text("this is not a checkpoint index\x00\x01")
    result, metrics = _validate(sample_dir, train_dir, tmp_path)
    assert f"Rebuilt {train_dir}/checkpoint from the checkpoints present" in result.stderr
    assert "cannot be parsed" in result.stderr and metrics["global_step"] == 2
    assert 'model_checkpoint_path: "model.ckpt-2"' in (train_dir / "checkpoint").read_text()


def test_no_readable_checkpoint_names_each(three_checkpoints, small_sample, tmp_path):
    sample_dir, _ = small_sample
    train_dir = _copy(three_checkpoints, tmp_path)
    for step in (1, 2, 3):
        _truncate(train_dir / f"model.ckpt-{step}.data-00000-of-00001")
    result, _ = _validate(sample_dir, train_dir, tmp_path, check=False)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert f"no checkpoint in {train_dir} can be read (" in result.stderr
    for step in (1, 2, 3):
        assert f"model.ckpt-{step}: " in result.stderr


def test_every_checkpoint_has_a_meta_graph_that_restores_it(three_checkpoints):
    # As TF 1.x's Saver wrote them (the original's inference imported them): each
    # checkpoint's .meta holds the graph and a saver that restores that checkpoint.
    for step in (1, 2, 3):
        prefix = str(three_checkpoints / f"model.ckpt-{step}")
        stored = tf.train.load_checkpoint(prefix)
        with tf.Graph().as_default() as graph:
            saver = tf.compat.v1.train.import_meta_graph(prefix + ".meta")
            variables = graph.get_collection(tf.compat.v1.GraphKeys.GLOBAL_VARIABLES)
            assert {v.op.name for v in variables} == set(stored.get_variable_to_shape_map())
            with tf.compat.v1.Session() as session:
                saver.restore(session, prefix)
                for variable, value in zip(variables, session.run(variables), strict=True):
                    np.testing.assert_array_equal(value, stored.get_tensor(variable.op.name))
        assert stored.get_tensor("global_step") == step
    # TensorBoard's graph, in the run's event file, is the one the .meta files hold.
    (events,) = three_checkpoints.glob("events.out.tfevents.*")
    graphs = [
        tf.compat.v1.GraphDef.FromString(event.graph_def)
        for event in tf.compat.v1.train.summary_iterator(str(events))
        if event.graph_def
    ]
    meta = tf.compat.v1.MetaGraphDef.FromString(
        (three_checkpoints / "model.ckpt-3.meta").read_bytes()
    )
    assert graphs == [meta.graph_def]
