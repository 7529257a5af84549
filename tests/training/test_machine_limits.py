"""The machine's limits read as one-line errors, with nothing lost: out of memory,
a disk that cannot take the checkpoint, a run directory this user cannot write."""

import ctypes
import os
import resource
import signal

import pytest
import tensorflow as tf

from fewer_frames.run_dirs import checkpoints
from fewer_frames.system.errors import UserError
from testlib import TINY_MODEL, Started, checkpoint_variables, run_binary

TINY = [*TINY_MODEL, "--batch_size=8", "--num_readers=2"]


def _train(sample_dir, train_dir, *flags, preexec_fn=None, env=None):
    return run_binary(
        "train.py",
        f"--train_dir={train_dir}",
        f"--train_data_pattern={sample_dir}/train*.tfrecord",
        "--training_mode=student_only",
        "--num_epochs=0",
        *flags,
        env=env,
        check=False,
        preexec_fn=preexec_fn,
    )


def _only_complete_checkpoints(train_dir, step):
    """The checkpoint of `step` is the latest and restores; no later or partial file."""
    assert checkpoints.latest_checkpoint(train_dir) == os.path.join(train_dir, f"model.ckpt-{step}")
    assert checkpoint_variables(train_dir)["global_step"] == step
    names = os.listdir(train_dir)
    partial = [name for name in names if "temp" in name or ".tmp" in name]
    assert partial == [], names
    steps = {int(name.split("-")[1].split(".")[0]) for name in names if name.startswith("model.")}
    assert max(steps) == step, names


def test_out_of_memory_names_the_batch_per_tower_and_the_memory_needed(small_sample, tmp_path):
    sample_dir, _ = small_sample

    def address_space_limit():
        # Far above a normal run, far below the 437 GB layer: no machine's policy
        # on overcommitting memory can let that allocation through.
        resource.setrlimit(resource.RLIMIT_AS, (64 << 30, 64 << 30))

    result = _train(
        sample_dir,
        tmp_path / "run",
        "--model=NetVLADModel",
        "--netvlad_cluster_size=100000",  # a hidden layer of 108.8M x 1024 weights
        "--optimizer=GradientDescentOptimizer",
        "--batch_size=8",
        "--max_steps=2",
        preexec_fn=address_space_limit,
        # TensorFlow's plain CPU allocator fails at once (oneDNN's retries for 10 s).
        env={"TF_ENABLE_ONEDNN_OPTS": "0"},
    )
    assert result.returncode == 1, result.stderr[-3000:]
    (line,) = [line for line in result.stderr.splitlines() if line.startswith("ERROR:")]
    assert line.startswith(
        "ERROR: out of memory (OOM when allocating tensor with shape[108800000,1024]"
    )
    assert "a step holds 8 videos per tower (--batch_size=8 over 1 tower(s))" in line
    assert "`benchmark.py --what=memory`" in line
    # The hidden layer alone, by hand: (1024 * 100000 + 128 * 50000) * 1024 values,
    # 4 copies of 4 bytes: 1660 GiB; the figure counts every weight.
    weights = float(line.split("this model needs ")[1].split(" GiB")[0])
    hidden = (1024 * 100000 + 128 * 50000) * 1024 * 16 / 2**30
    assert hidden < weights < hidden * 1.01
    assert "Traceback" not in result.stderr
    assert checkpoints.latest_checkpoint(str(tmp_path / "run")) is None


def test_a_checkpoint_the_disk_cannot_take_leaves_the_previous_one(small_sample, tmp_path):
    sample_dir, _ = small_sample
    train_dir = str(tmp_path / "run")
    assert _train(sample_dir, train_dir, *TINY, "--max_steps=2").returncode == 0
    data_bytes = os.path.getsize(os.path.join(train_dir, "model.ckpt-2.data-00000-of-00001"))

    def file_size_limit():
        # A write past the limit fails (EFBIG) as on a full disk, instead of SIGXFSZ.
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        limit = data_bytes // 2  # above the events file and the JSON files
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    result = _train(sample_dir, train_dir, *TINY, "--max_steps=4", preexec_fn=file_size_limit)
    assert result.returncode == 1, result.stderr[-3000:]
    (line,) = [line for line in result.stderr.splitlines() if line.startswith("ERROR:")]
    assert line.startswith(f"ERROR: cannot write the checkpoint of global step 4 in {train_dir} (")
    assert "File too large" in line
    assert "no part of it is left, the checkpoint of step 2 is kept" in line
    assert "Traceback" not in result.stderr
    _only_complete_checkpoints(train_dir, 2)
    # Once the disk takes it, the same command resumes from step 2.
    again = _train(sample_dir, train_dir, *TINY, "--max_steps=4")
    assert again.returncode == 0 and "Training from global step 2" in again.stderr
    _only_complete_checkpoints(train_dir, 4)


def _without_file_permission_override():
    """Drops root's power to write where the permissions say no (CAP_DAC_OVERRIDE,
    CAP_DAC_READ_SEARCH) for the process started next; nothing to drop for others."""
    if os.geteuid() != 0:
        return
    libc = ctypes.CDLL(None, use_errno=True)
    for capability in (1, 2):
        if libc.prctl(24, capability, 0, 0, 0) != 0:  # PR_CAPBSET_DROP
            raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP)")


def test_a_run_directory_that_stops_taking_writes_keeps_the_last_checkpoint(small_sample, tmp_path):
    sample_dir, _ = small_sample
    train_dir = tmp_path / "run"
    assert _train(sample_dir, train_dir, *TINY, "--max_steps=2").returncode == 0
    # Made read-only mid-run; the save at SIGTERM is refused.
    training = Started(
        tmp_path / "train.log",
        "train.py",
        f"--train_dir={train_dir}",
        f"--train_data_pattern={sample_dir}/train*.tfrecord",
        "--training_mode=student_only",
        "--num_epochs=0",
        "--log_every_steps=1",
        *TINY,
        preexec_fn=_without_file_permission_override,
    )
    try:

        def made_read_only():
            if "training step 4|" not in training.log():
                return False
            os.chmod(train_dir, 0o555)
            return True

        status, log = training.signal_when(made_read_only, signal.SIGTERM)
    finally:
        os.chmod(train_dir, 0o755)
        training.process.kill()
        training.process.wait()
    assert status == 1, log[-3000:]
    (line,) = [line for line in log.splitlines() if line.startswith("ERROR:")]
    assert line.startswith("ERROR: cannot write the checkpoint of global step ")
    assert f"in {train_dir} (" in line and "Permission denied" in line, line
    assert "no part of it is left, the checkpoint of step 2 is kept" in line
    assert "Traceback" not in log
    _only_complete_checkpoints(str(train_dir), 2)


def test_a_run_directory_this_user_cannot_write_is_named_at_the_start(small_sample, tmp_path):
    sample_dir, _ = small_sample
    train_dir = tmp_path / "run"
    assert _train(sample_dir, train_dir, *TINY, "--max_steps=2").returncode == 0
    os.chmod(train_dir, 0o555)
    try:
        result = _train(
            sample_dir,
            train_dir,
            *TINY,
            "--max_steps=4",
            preexec_fn=_without_file_permission_override,
        )
    finally:
        os.chmod(train_dir, 0o755)
    assert result.returncode == 1, result.stderr[-3000:]
    (line,) = [line for line in result.stderr.splitlines() if line.startswith("ERROR:")]
    assert line.startswith(f"ERROR: permission denied: {train_dir}/"), line
    assert "let this user write there" in line
    assert "Traceback" not in result.stderr
    _only_complete_checkpoints(str(train_dir), 2)


def test_a_save_that_fails_after_writing_some_files_leaves_none_of_them(tmp_path):
    """Where TensorFlow itself leaves files of a failed save (the data file written,
    the index refused), they are removed; the previous checkpoint stays."""
    train_dir = str(tmp_path)
    step = tf.compat.v1.train.get_or_create_global_step()
    saver = checkpoints.make_saver()

    class DiskFullAfterTheData:
        def save(self, session, prefix, global_step, **options):
            number = session.run(global_step)
            with open(f"{prefix}-{number}.data-00000-of-00001", "wb") as partial:
                partial.write(b"\0" * 100)
            raise tf.errors.ResourceExhaustedError(
                None, None, f"{prefix}-{number}.index.tempstate1; No space left on device"
            )

    with tf.compat.v1.Session() as session:
        session.run(tf.compat.v1.global_variables_initializer())
        session.run(step.assign(2))
        checkpoints.save_checkpoint(saver, session, train_dir, step)
        session.run(step.assign(3))
        with pytest.raises(UserError) as failed:
            checkpoints.save_checkpoint(DiskFullAfterTheData(), session, train_dir, step)
    assert str(failed.value).startswith(
        f"cannot write the checkpoint of global step 3 in {train_dir}"
    )
    assert "No space left on device); no part of it is left, the checkpoint of step 2" in str(
        failed.value
    )
    _only_complete_checkpoints(train_dir, 2)
