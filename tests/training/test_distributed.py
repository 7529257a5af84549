"""Between-graph replication: 1 parameter server and 2 workers on 127.0.0.1."""

import json
import os
import re
import signal
import socket
import subprocess
import time

import tensorflow as tf

from testlib import CODE_DIR, PROJECT_ROOT, TINY_MODEL, TINY_RUN, binary_launcher


def free_ports(count):
    sockets = [socket.socket() for _ in range(count)]
    for sock in sockets:
        sock.bind(("127.0.0.1", 0))
    ports = [sock.getsockname()[1] for sock in sockets]
    for sock in sockets:
        sock.close()
    return ports


def local_cluster():
    """(the parameter server's port, a cluster of it and two workers on 127.0.0.1)."""
    ps_port, worker0, worker1 = free_ports(3)
    return ps_port, {
        "ps": [f"127.0.0.1:{ps_port}"],
        "worker": [f"127.0.0.1:{worker0}", f"127.0.0.1:{worker1}"],
    }


def digest_on_parameter_server(port, checkpoint):
    """The digest of the model variables read from the running parameter server.

    A client graph declares the variables (names and shapes of the checkpoint)
    on the server's device and reads them without initialising: it fails unless
    the server holds them.
    """
    reader = tf.train.load_checkpoint(checkpoint)
    shapes = reader.get_variable_to_shape_map()
    names = sorted(name for name in shapes if name.startswith("model") and "Adam" not in name)
    with tf.Graph().as_default(), tf.device("/job:ps/task:0"):
        variables = [tf.compat.v1.get_variable(name, shapes[name]) for name in names]
        digest = tf.add_n(
            [tf.reduce_sum(tf.square(tf.cast(variable, tf.float64))) for variable in variables]
        )
        # Only the server: the workers have exited. A variable it lacks fails the read.
        config = tf.compat.v1.ConfigProto(device_filters=["/job:ps"], operation_timeout_in_ms=60000)
        with tf.compat.v1.Session(f"grpc://127.0.0.1:{port}", config=config) as session:
            return float(session.run(digest))


def test_two_workers_share_one_global_step(small_sample, tmp_path):
    sample_dir, _ = small_sample
    ps_port, cluster = local_cluster()
    train_dir = str(tmp_path / "run")
    flags = [
        f"--train_dir={train_dir}",
        f"--train_data_pattern={sample_dir}/train*.tfrecord",
        *TINY_MODEL,
        "--batch_size=8",
        "--num_epochs=0",
        "--max_steps=60",
        "--log_every_steps=1",
        "--num_readers=2",
        # Each worker with two towers (on logical CPU devices) of 4 videos.
        "--num_cpu_towers=2",
    ]

    def start(job, index):
        env = dict(
            os.environ,
            TF_CONFIG=json.dumps({"cluster": cluster, "task": {"type": job, "index": index}}),
        )
        return subprocess.Popen(
            [binary_launcher(), os.path.join(CODE_DIR, "train.py"), *flags],
            env=env,
            cwd=PROJECT_ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )

    start_time = time.time()
    parameter_server = start("ps", 0)
    workers = [start("worker", 0), start("worker", 1)]
    try:
        logs = [worker.communicate(timeout=300)[1] for worker in workers]
        for worker, log in zip(workers, logs, strict=True):
            assert worker.returncode == 0, log[-3000:]
        # The weights as the parameter server holds them once both workers are done.
        held = digest_on_parameter_server(ps_port, tf.train.latest_checkpoint(train_dir))
    finally:
        for process in [parameter_server, *workers]:
            process.kill()
        parameter_server.wait()
    seconds = time.time() - start_time
    # Every variable of both workers' graphs lives on the parameter server.
    for log in logs:
        placed = re.search(r"variables on (.*)\n", log)
        assert placed, log[-3000:]
        assert all(device.startswith("/job:ps/task:0") for device in placed.group(1).split(", ")), (
            placed.group(0)
        )
    # Both workers changed those same weights: each ends seeing the server's
    # weights, and the last to finish left exactly what the server holds.
    digests = [float(re.search(r"weights digest (\S+)", log).group(1)) for log in logs]
    # (Equal up to float64 summation order.)
    assert any(abs(held - digest) <= 1e-12 * abs(held) for digest in digests), (held, digests)
    steps = [[int(s) for s in re.findall(r"training step (\d+)\|", log)] for log in logs]
    assert all(steps), logs
    # One shared step: each worker sees the other's updates, so neither counts 1, 2, 3, ...
    for own, other in ((steps[0], steps[1]), (steps[1], steps[0])):
        assert own != list(range(own[0], own[0] + len(own)))
        assert set(own) & set(range(min(other), max(other) + 1))
    assert "Final checkpoint at global step" in logs[0]
    assert "Worker done at global step" in logs[1]
    chief_final = int(re.search(r"Final checkpoint at global step (\d+)", logs[0]).group(1))
    checkpoint = tf.train.latest_checkpoint(train_dir)
    stored = int(tf.train.load_checkpoint(checkpoint).get_tensor("global_step"))
    assert checkpoint.endswith(f"-{chief_final}")
    # The chief's checkpoint holds the shared step: every update of both workers.
    assert 60 <= stored <= max(steps[0] + steps[1])
    assert len(steps[0]) + len(steps[1]) >= 60
    print(f"distributed run: {seconds:.1f} s; steps per worker {len(steps[0])}, {len(steps[1])}")


def test_bad_tf_config_is_reported(tmp_path):
    env = dict(os.environ, TF_CONFIG='{"cluster": {"worker": ["127.0.0.1:1"]}, "task": {}}')
    result = subprocess.run(
        [binary_launcher(), os.path.join(CODE_DIR, "train.py"), f"--train_dir={tmp_path}"],
        env=env,
        capture_output=True,
        text=True,
        cwd=PROJECT_ROOT,
        timeout=120,
    )
    assert result.returncode == 1
    assert "TF_CONFIG is not a valid cluster description" in result.stderr


def test_sigterm_stops_a_distributed_run_with_the_chief_saving(small_sample, tmp_path):
    sample_dir, _ = small_sample
    _, cluster = local_cluster()
    train_dir = tmp_path / "run"
    flags = [
        f"--train_dir={train_dir}",
        f"--train_data_pattern={sample_dir}/train*.tfrecord",
        *TINY_RUN,
        "--log_every_steps=1",
        "--checkpoint_every_secs=100000",
    ]
    processes, logs = [], []
    for job, index in (("ps", 0), ("worker", 0), ("worker", 1)):
        logs.append(tmp_path / f"{job}{index}.log")
        task = json.dumps({"cluster": cluster, "task": {"type": job, "index": index}})
        with open(logs[-1], "w") as log:
            processes.append(
                subprocess.Popen(
                    [binary_launcher(), os.path.join(CODE_DIR, "train.py"), *flags],
                    env=dict(os.environ, TF_CONFIG=task),
                    cwd=PROJECT_ROOT,
                    stdout=subprocess.DEVNULL,
                    stderr=log,
                )
            )
    parameter_server, *workers = processes
    try:
        deadline = time.time() + 180
        while not all("training step" in path.read_text() for path in logs[1:]):
            assert all(worker.poll() is None for worker in workers), logs[1].read_text()[-3000:]
            assert time.time() < deadline, "the workers never trained"
            time.sleep(0.1)
        time.sleep(0.5)
        for worker in workers:
            worker.send_signal(signal.SIGTERM)
        codes = [worker.wait(timeout=120) for worker in workers]
    finally:
        for process in processes:
            process.kill()
            process.wait()
    chief, other = (path.read_text() for path in logs[1:])
    assert codes == [143, 143], (chief[-3000:], other[-3000:])
    saved = re.search(r"Stopped by SIGTERM: at global step \d+; checkpoint at step (\d+)", chief)
    assert saved, chief[-3000:]
    assert "Stopped by SIGTERM" in other and "worker stopped" in other
    latest = tf.train.latest_checkpoint(str(train_dir))
    assert latest.endswith(f"model.ckpt-{saved.group(1)}")
