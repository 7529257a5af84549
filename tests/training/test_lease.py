"""One trainer per run directory: a second one is refused, a dead one's lease taken over."""

import json
import re
import signal
import socket
import time

import tensorflow as tf

from testlib import TINY_RUN, Started, run_binary

LEASE = "trainer_lease.json"


def test_one_trainer_per_run_directory(small_sample, tmp_path):
    sample_dir, _ = small_sample
    train_dir = tmp_path / "run"
    flags = [
        f"--train_dir={train_dir}",
        f"--train_data_pattern={sample_dir}/train*.tfrecord",
        "--training_mode=student_only",
        *TINY_RUN,
        "--checkpoint_every_steps=5",
        "--log_every_steps=1",
    ]
    # A new interpreter: the lease names the process the test started.
    started = Started(tmp_path / "first.log", "train.py", *flags, fresh_process=True)
    first = started.process
    try:
        deadline = time.time() + 120
        while not tf.train.latest_checkpoint(str(train_dir)):
            assert first.poll() is None, started.log()[-3000:]
            assert time.time() < deadline
            time.sleep(0.1)
        # Paused, it holds the lease without taking a core from the runs below.
        first.send_signal(signal.SIGSTOP)
        holder = json.loads((train_dir / LEASE).read_text())
        assert holder["pid"] == first.pid and holder["host"] == socket.gethostname()
        refused = f"is being trained by host {socket.gethostname()} process {first.pid}"
        second = run_binary("train.py", *flags, "--max_steps=2", check=False)
        assert second.returncode == 1 and refused in second.stderr, second.stderr[-2000:]
        replaced = run_binary(
            "train.py", *flags, "--start_new_model", "--overwrite", "--max_steps=2", check=False
        )
        assert replaced.returncode == 1 and refused in replaced.stderr, replaced.stderr[-2000:]
        assert tf.train.latest_checkpoint(str(train_dir))  # nothing was removed
        # An evaluator takes no lease.
        run_binary(
            "validate.py",
            f"--train_dir={train_dir}",
            f"--eval_data_pattern={sample_dir}/validate*.tfrecord",
            "--run_once",
        )
        first.send_signal(signal.SIGKILL)
        first.wait()
    finally:
        first.kill()
        first.wait()
    # kill -9 left the lease; its process is gone, so the next trainer takes it over.
    assert json.loads((train_dir / LEASE).read_text())["pid"] == first.pid
    step = int(tf.train.latest_checkpoint(str(train_dir)).rsplit("-", 1)[1])
    taken = run_binary("train.py", *flags, f"--max_steps={step + 1}")
    assert f"Taking over the lease of host {socket.gethostname()} process {first.pid}" in (
        taken.stderr
    )
    assert "that process is gone" in taken.stderr
    assert not (train_dir / LEASE).exists()  # released at the end

    # A lease from another machine is respected while it is refreshed.
    now = time.time()
    elsewhere = {"host": "elsewhere", "pid": 1, "started": now - 4000}
    (train_dir / LEASE).write_text(json.dumps(dict(elsewhere, refreshed=now - 10)))
    busy = run_binary("train.py", *flags, f"--max_steps={step + 2}", check=False)
    assert busy.returncode == 1 and "is being trained by host elsewhere process 1" in busy.stderr
    (train_dir / LEASE).write_text(json.dumps(dict(elsewhere, refreshed=now - 4000)))
    stale = run_binary("train.py", *flags, f"--max_steps={step + 2}")
    assert "Taking over the lease of host elsewhere process 1" in stale.stderr
    assert re.search(r"not refreshed for 400\d s", stale.stderr), stale.stderr[-2000:]
