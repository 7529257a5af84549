"""SIGTERM (a preempted machine) and SIGINT (Ctrl-C): training saves and resumes,
other binaries leave no partial output. Every binary runs in a new interpreter."""

import glob
import os
import random
import re
import shutil
import signal
import subprocess
import time

import pytest
import tensorflow as tf

from fewer_frames.system import runtime
from testlib import (
    CODE_DIR,
    PROJECT_ROOT,
    TINY_RUN,
    Started,
    binary_launcher,
    checkpoint_variables,
)


def training_flags(sample_dir, train_dir, max_steps):
    return [
        f"--train_dir={train_dir}",
        f"--train_data_pattern={sample_dir}/train*.tfrecord",
        *TINY_RUN,
        f"--max_steps={max_steps}",
        "--log_every_steps=1",
        "--checkpoint_every_secs=100000",  # only the stop saves
    ]


STEP_LINE = re.compile(r"training step (\d+)\|")


CASES = [
    ("train.py", signal.SIGTERM, []),
    ("train.py", signal.SIGINT, ["--training_mode=student_only"]),
    ("train_finetune.py", signal.SIGTERM, []),
]


@pytest.mark.parametrize("binary, signum, flags", CASES)
def test_a_signal_saves_the_step_reached_and_the_same_command_resumes(
    binary, signum, flags, small_sample, shared_run, tmp_path
):
    sample_dir, _ = small_sample
    train_dir = tmp_path / "run"
    if binary == "train_finetune.py":
        shutil.copytree(shared_run("converted"), train_dir)
    training = Started(
        tmp_path / "train.log",
        binary,
        *training_flags(sample_dir, train_dir, 100000),
        *flags,
    )
    # At a random moment once training runs.
    delay = random.Random(int(signum) * 7 + len(binary)).uniform(0.1, 1.5)
    first_step = []

    def trained_for_a_while():
        if not first_step and STEP_LINE.search(training.log()):
            first_step.append(time.time())
        return first_step and time.time() - first_step[0] > delay

    code, output = training.signal_when(trained_for_a_while, signum)
    assert code == 128 + signum, output[-3000:]
    name = signal.Signals(signum).name
    stopped = re.search(
        rf"Stopped by {name}: at global step (\d+); checkpoint at step (\d+) in ", output
    )
    assert stopped, output[-3000:]
    step = int(stopped.group(1))
    assert int(stopped.group(2)) == step
    assert step == int(STEP_LINE.findall(output)[-1])  # the step in flight finished
    assert "Traceback" not in output
    latest = tf.train.latest_checkpoint(str(train_dir))
    assert latest.endswith(f"model.ckpt-{step}")
    assert checkpoint_variables(str(train_dir))["global_step"] == step

    resumed = subprocess.run(
        [binary_launcher(), os.path.join(CODE_DIR, binary)]
        + training_flags(sample_dir, train_dir, step + 2)
        + flags,
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert f"Resumed from {latest}" in resumed.stderr
    assert [int(s) for s in STEP_LINE.findall(resumed.stderr)] == [step + 1, step + 2]


def test_a_second_ctrl_c_ends_the_process_at_once():
    with runtime.deferred_stop() as stop:
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.1)  # the handler runs between bytecodes
        assert stop.signum == signal.SIGINT
        assert signal.getsignal(signal.SIGINT) == signal.SIG_DFL
    assert signal.getsignal(signal.SIGINT) is not signal.SIG_DFL


# A signal landing inside TensorFlow's own context managers (while a graph is being
# built) leaves one of them entered; leaving the outer graph then fails with
# TensorFlow's "nesting violated". The run was still stopped by the signal.
SIGNAL_INSIDE_GRAPH_BUILDING = """
import os, signal, sys, time
sys.path.insert(0, {code_dir!r})
import tensorflow as tf
from fewer_frames.system import runtime

def main(argv):
    with tf.Graph().as_default():
        left_entered = tf.Graph().as_default()  # what the signal interrupted
        left_entered.__enter__()
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(5)

runtime.run(main)
"""

# A context manager that the signal left half-entered fails only when Python
# collects it, after the stop was reported (TensorFlow's function-graph scope
# does: "'NoneType' object is not iterable"); Python prints such errors itself.
SIGNAL_LEAVING_A_CLEAN_UP_THAT_FAILS_WHEN_COLLECTED = """
import os, signal, sys, time
sys.path.insert(0, {code_dir!r})
from fewer_frames.system import runtime

def scope():
    try:
        yield
    finally:
        raise TypeError("'NoneType' object is not iterable")

def main(argv):
    left_entered = scope()
    next(left_entered)
    os.kill(os.getpid(), signal.SIGTERM)
    time.sleep(5)

runtime.run(main)
"""

# TensorFlow's C++ code can catch the Interrupted a signal raised inside it and
# raise an error of its own with no trace of it (nest.flatten: a bare TypeError).
SIGNAL_SWALLOWED_BY_CODE_THAT_RAISES_ITS_OWN_ERROR = """
import os, signal, sys, time
sys.path.insert(0, {code_dir!r})
from fewer_frames.system import runtime

def flatten():
    try:
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(5)
    except BaseException:
        pass
    raise TypeError

def main(argv):
    flatten()

runtime.run(main)
"""


# A signal whose Interrupted is swallowed whole (raised inside an import, it can
# become a SystemError that Python reports as unraisable) while the binary goes
# on to finish its output: the output is not put in place, and it ends stopped.
SIGNAL_SWALLOWED_WHOLE_BEFORE_AN_OUTPUT = """
import os, signal, sys, time
sys.path.insert(0, {code_dir!r})
from fewer_frames.system import filesystem, runtime

def main(argv):
    with filesystem.atomic_output({folder!r} + "/output.txt") as temporary:
        with open(temporary, "w") as stream:
            stream.write("whole")
        try:
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(5)
        except BaseException:
            pass

runtime.run(main)
"""


def test_a_signal_swallowed_whole_still_leaves_no_output(tmp_path):
    result = subprocess.run(
        [
            binary_launcher(),
            "-c",
            SIGNAL_SWALLOWED_WHOLE_BEFORE_AN_OUTPUT.format(code_dir=CODE_DIR, folder=str(tmp_path)),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 128 + signal.SIGTERM, result.stderr[-3000:]
    assert "Stopped by SIGTERM: before an output was put in place" in result.stderr
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize(
    "script, stopped",
    [
        (SIGNAL_INSIDE_GRAPH_BUILDING, "Stopped by SIGTERM (then, unwinding: Nesting violated"),
        (
            SIGNAL_LEAVING_A_CLEAN_UP_THAT_FAILS_WHEN_COLLECTED,
            "Stopped by SIGTERM\n(while stopping, a clean-up left half-done failed: TypeError",
        ),
        (
            SIGNAL_SWALLOWED_BY_CODE_THAT_RAISES_ITS_OWN_ERROR,
            "Stopped by SIGTERM (then, unwinding: TypeError",
        ),
    ],
    ids=["while-unwinding", "when-collected", "swallowed"],
)
def test_a_signal_inside_tensorflow_code_still_ends_as_stopped(script, stopped):
    result = subprocess.run(
        [binary_launcher(), "-c", script.format(code_dir=CODE_DIR)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 128 + signal.SIGTERM, result.stderr[-3000:]
    assert stopped in result.stderr, result.stderr[-3000:]
    assert "Traceback" not in result.stderr, result.stderr[-3000:]


def _staging(folder):
    return glob.glob(os.path.join(folder, ".*"))


def test_signalled_inference_evaluation_and_export_leave_no_output(
    small_sample, shared_run, tmp_path
):
    sample_dir, _ = small_sample
    with open(f"{sample_dir}/test0000.tfrecord", "rb") as handle:
        (tmp_path / "many.tfrecord").write_bytes(handle.read() * 40)  # 2,400 videos
    out = tmp_path / "out"
    out.mkdir()
    run = shared_run("teacher_student")
    inference = Started(
        tmp_path / "inference.log",
        "inference.py",
        f"--train_dir={run}",
        f"--input_data_pattern={tmp_path}/many.tfrecord",
        f"--output_file={out}/predictions.csv",
        "--batch_size=16",
        fresh_process=True,  # paused below, which a launcher would not pass on
    )

    def writing():
        """Its output is being written under a temporary name: paused there, so
        that the signal lands before it can finish (2,400 videos take 2 s)."""
        if not _staging(str(out)):
            return False
        inference.process.send_signal(signal.SIGSTOP)
        return True

    code, output = inference.signal_when(writing, signal.SIGTERM)
    assert code == 128 + signal.SIGTERM, output[-3000:]
    assert "Stopped by SIGTERM" in output and "Traceback" not in output
    assert os.listdir(out) == []

    metrics = out / "metrics.json"
    validate = Started(
        tmp_path / "validate.log",
        "validate.py",
        f"--train_dir={run}",
        f"--eval_data_pattern={tmp_path}/many.tfrecord",
        f"--metrics_json={metrics}",
        "--run_once",
        "--batch_size=16",
        "--progress_every_secs=0",
    )
    code, output = validate.signal_when(
        lambda: "evaluated 32 videos" in validate.log(), signal.SIGINT
    )
    assert code == 128 + signal.SIGINT, output[-3000:]
    assert "Stopped by SIGINT" in output and "Traceback" not in output
    assert os.listdir(out) == []

    export = Started(
        tmp_path / "export.log",
        "export_model.py",
        f"--train_dir={run}",
        f"--export_dir={out}/export",
    )
    # While the SavedModel is being written in its staging directory.
    code, output = export.signal_when(lambda: _staging(str(out)), signal.SIGTERM)
    assert code == 128 + signal.SIGTERM, output[-3000:]
    assert "Stopped by SIGTERM" in output and "Traceback" not in output
    assert os.listdir(out) == []
