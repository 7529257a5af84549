"""Paths and helpers shared by the tests (imported by conftest and test modules)."""

import contextlib
import fcntl
import glob
import json
import os
import shutil
import signal
import subprocess
import sys
import time

import numpy as np

PROJECT_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CODE_DIR = os.path.join(PROJECT_ROOT, "code_student_uniform")
REAL_DATA_DIR = os.path.normpath(os.path.join(PROJECT_ROOT, "..", "shared", "data", "yt8m_real"))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import tensorflow as tf  # noqa: E402

tf.compat.v1.disable_eager_execution()


# The first 60 frames of each video in 10 chunks (the student: every 10th frame,
# 6, in 2 chunks): a training step costs half of one on 300 frames, and the
# graph builds in two thirds of the time. Tests of the frame count itself give
# their own.
FEW_FRAMES = [
    "--max_num_frames=60",
    "--num_inputs_to_lstm=10",
    "--student_num_inputs_to_lstm=2",
]

# The paper's 300 frames in 20 chunks, the student's 30 in 5 (the defaults), for
# tests of what happens past the first 60 frames.
ALL_FRAMES = [
    "--max_num_frames=300",
    "--num_inputs_to_lstm=20",
    "--student_num_inputs_to_lstm=5",
]

# A CPU-sized model, and the input and run flags of tests that train through the
# binaries.
TINY_MODEL = ["--lstm_cells=8", "--lstm_layers=1", *FEW_FRAMES]
TINY_INPUT = ["--batch_size=16", "--num_readers=2", "--num_epochs=0"]
TINY_RUN = [*TINY_MODEL, *TINY_INPUT]


# Beam's runner in this process (--beam_pipeline_options; requirements-beam.txt).
BEAM_IN_MEMORY = "--beam_pipeline_options=runner=DirectRunner,direct_running_mode=in_memory"


def shared_root(tmp_path_factory):
    """A folder every pytest-xdist worker of this session sees (its own base
    folder when pytest runs alone)."""
    base = tmp_path_factory.getbasetemp()
    return base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base


@contextlib.contextmanager
def made_once(directory):
    """Yields True to the first process of the session that should make
    `directory` (the others wait for it, then get False)."""
    directory.parent.mkdir(parents=True, exist_ok=True)
    with open(f"{directory}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        done = directory / ".made"
        if done.exists():
            yield False
            return
        shutil.rmtree(directory, ignore_errors=True)
        yield True
        done.write_text("")


# Binaries run in processes forked from a server that has imported TensorFlow
# (tests/forked_binary.py), through its launcher; YT8M_TESTS_FRESH_PROCESSES=1
# starts each in a fresh interpreter instead.
FRESH_PROCESSES = os.environ.get("YT8M_TESTS_FRESH_PROCESSES") == "1"
_fork_server = None  # (process, folder) of this test process's server


def binary_launcher():
    """The executable that runs a binary (`LAUNCHER script.py flags`): the fork
    server's launcher, started on first use; the interpreter itself under
    YT8M_TESTS_FRESH_PROCESSES=1."""
    global _fork_server
    if FRESH_PROCESSES:
        return sys.executable
    if _fork_server is None:
        import atexit
        import tempfile

        # A short path: a Unix socket's is limited to 107 bytes.
        folder = tempfile.mkdtemp(prefix="yt8m-fork-", dir="/tmp")
        os.makedirs(os.path.join(folder, "bin"))
        process = subprocess.Popen(
            [
                sys.executable,
                os.path.join(PROJECT_ROOT, "tests", "forked_binary.py"),
                os.path.join(folder, "socket"),
                os.path.join(folder, "bin", "python"),
            ],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert process.stdout.readline().strip() == "ready", "the fork server did not start"
        # The folder stands in for the virtual environment of the stage scripts
        # (VENV_DIR): its bin/python is the launcher, its stamps say what is installed.
        for stamp in glob.glob(os.path.join(sys.prefix, ".installed-*")):
            shutil.copy(stamp, folder)

        def stop():
            process.kill()
            process.wait()
            shutil.rmtree(folder, ignore_errors=True)

        atexit.register(stop)
        _fork_server = process, folder
    return os.path.join(_fork_server[1], "bin", "python")


def launcher_environment():
    """Environment for a stage script whose binaries go through binary_launcher()."""
    launcher = binary_launcher()
    return (
        {}
        if launcher == sys.executable
        else {"VENV_DIR": os.path.dirname(os.path.dirname(launcher))}
    )


def run_binary(
    script, *args, env=None, timeout=600, check=True, fresh_process=False, preexec_fn=None
):
    """Runs code_student_uniform/<script> with flags; returns the CompletedProcess.
    `fresh_process` starts a new interpreter (as every run does without the fork
    server, under YT8M_TESTS_FRESH_PROCESSES=1); so does `preexec_fn`, called in the
    child before it starts (limits, capabilities)."""
    path = os.path.join(CODE_DIR, script)
    python = sys.executable if fresh_process or preexec_fn else binary_launcher()
    result = subprocess.run(
        [python, path, *args],
        capture_output=True,
        text=True,
        env=dict(os.environ, **(env or {})),
        timeout=timeout,
        cwd=PROJECT_ROOT,
        preexec_fn=preexec_fn,
    )
    if check and result.returncode != 0:
        raise AssertionError(
            f"{script} exited {result.returncode}\nstdout:\n{result.stdout[-4000:]}\n"
            f"stderr:\n{result.stderr[-8000:]}"
        )
    return result


class Started:
    """A binary started through binary_launcher() (a new interpreter with
    `fresh_process` or `preexec_fn`), its stderr going to a file."""

    def __init__(self, log_path, binary, *flags, fresh_process=False, preexec_fn=None, stdin=None):
        self.log_path = log_path
        python = sys.executable if fresh_process or preexec_fn else binary_launcher()
        with open(log_path, "w") as log:
            self.process = subprocess.Popen(
                [python, os.path.join(CODE_DIR, binary), *flags],
                cwd=PROJECT_ROOT,
                stdin=stdin,
                stdout=subprocess.DEVNULL,
                stderr=log,
                preexec_fn=preexec_fn,
                text=True,
            )

    def log(self):
        return self.log_path.read_text()

    def fed(self, lines, written, timeout=120):
        """Writes `lines` to the binary's standard input (Started with
        stdin=subprocess.PIPE) one by one, each once `written(i)` holds for the
        i lines before it; then ends the input. Returns (exit status, log)."""
        for index, line in enumerate(lines):
            self._wait_for(lambda index=index: written(index), timeout)
            self.process.stdin.write(line + "\n")
            self.process.stdin.flush()
        self.process.stdin.close()
        return self.process.wait(timeout=timeout), self.log()

    def _wait_for(self, ready, timeout):
        deadline = time.time() + timeout
        while not ready():
            assert self.process.poll() is None, self.log()[-3000:]
            assert time.time() < deadline, "the binary never got there"
            time.sleep(0.05)

    def signal_when(self, ready, signum, timeout=120):
        """Sends `signum` once `ready()` holds; returns (exit status, log)."""
        self._wait_for(ready, timeout)
        self.process.send_signal(signum)
        self.process.send_signal(signal.SIGCONT)  # in case `ready` paused it (SIGSTOP)
        return self.process.wait(timeout=timeout), self.log()


def run_inference(train_dir, data_pattern, output_file, *flags, **options):
    """inference.py on a run and its data (`options`: run_binary's); the CompletedProcess."""
    return run_binary(
        "inference.py",
        f"--train_dir={train_dir}",
        f"--input_data_pattern={data_pattern}",
        f"--output_file={output_file}",
        *flags,
        **options,
    )


def dequantize(codes):
    """The YouTube-8M dequantisation as SPEC.md writes it: q * 4/255 + 4/512 - 2."""
    return codes * (4.0 / 255.0) + (4.0 / 512.0 - 2.0)


def run_session(fetches, feed_dict=None):
    """Initialises variables and runs `fetches` once in a fresh session."""
    with tf.compat.v1.Session() as session:
        session.run(tf.compat.v1.global_variables_initializer())
        session.run(tf.compat.v1.local_variables_initializer())
        return session.run(fetches, feed_dict=feed_dict)


def read_all_batches(tensors):
    """Runs an input pipeline to the end; returns a dict of concatenated numpy arrays."""
    batches = []
    with tf.compat.v1.Session() as session:
        while True:
            try:
                batches.append(session.run(tensors))
            except tf.errors.OutOfRangeError:
                break
    return {key: np.concatenate([batch[key] for batch in batches]) for key in batches[0]}


def checkpoint_variables(directory):
    """{name: value} of the latest checkpoint in `directory`."""
    reader = tf.train.load_checkpoint(tf.train.latest_checkpoint(directory))
    return {name: reader.get_tensor(name) for name in reader.get_variable_to_shape_map()}


def read_text(path):
    with open(path) as handle:
        return handle.read()


def read_json(path):
    return json.loads(read_text(path))


def event_values(directory):
    """{tag: {step: value}} of the scalar summaries in `directory`'s event files."""
    values = {}
    for path in glob.glob(os.path.join(directory, "events.out.tfevents.*")):
        for event in tf.compat.v1.train.summary_iterator(path):
            for value in event.summary.value:
                values.setdefault(value.tag, {})[event.step] = value.simple_value
    return values


def event_tags(directory):
    return set(event_values(directory))


def run_script(name, *args, env, check=True):
    """Runs a bash script of the project; its binaries go through binary_launcher()."""
    result = subprocess.run(
        ["bash", os.path.join(PROJECT_ROOT, name), *args],
        capture_output=True,
        text=True,
        env=dict(os.environ, **launcher_environment(), **env),
        cwd=PROJECT_ROOT,
        timeout=600,
    )
    if check and result.returncode != 0:
        raise AssertionError(f"{name} exited {result.returncode}:\n{result.stderr[-6000:]}")
    return result


def read_csv(path):
    with open(path) as handle:
        lines = handle.read().splitlines()
    assert lines[0] == "VideoId,LabelConfidencePairs"
    rows = {}
    for line in lines[1:]:
        video_id, pairs = line.split(",")
        values = pairs.split()
        rows[video_id] = (np.array(values[0::2], int), np.array(values[1::2], float))
    return rows


def labels_of_records(pattern, num_classes, frame_level=True):
    """[videos, num_classes] 0/1 labels of the records a glob matches, by a protobuf parse."""
    parse = tf.train.SequenceExample if frame_level else tf.train.Example
    rows = []
    for path in sorted(glob.glob(pattern)):
        for raw in tf.compat.v1.io.tf_record_iterator(path):
            example = parse.FromString(raw)
            features = example.context.feature if frame_level else example.features.feature
            row = np.zeros(num_classes)
            row[list(features["labels"].int64_list.value)] = 1
            rows.append(row)
    return np.array(rows)


def class_prior_gap(train_pattern, eval_pattern, num_classes, frame_level=True):
    """GAP of a trivial model: every video scored by the classes' training frequencies."""
    from fewer_frames.evaluation import eval_util

    prior = labels_of_records(train_pattern, num_classes, frame_level).mean(axis=0)
    labels = labels_of_records(eval_pattern, num_classes, frame_level)
    return eval_util.calculate_gap(np.tile(prior, (len(labels), 1)), labels)


# How far above the class prior a model that "learns" must score (the prior's GAP
# is about 0.22 on the tests' sample).
LEARNED_MARGIN = 0.05


def assert_learned(gap, sample_dir, num_classes, what=""):
    """The GAP on the sample's validate split is above the class prior's by the margin."""
    prior = class_prior_gap(
        f"{sample_dir}/train*.tfrecord", f"{sample_dir}/validate*.tfrecord", num_classes
    )
    assert gap > prior + LEARNED_MARGIN, (what, gap, prior)


def validated_metrics(train_dir, eval_data_pattern, metrics_path, *flags):
    """The metrics of one validate.py pass over `eval_data_pattern` (its JSON)."""
    run_binary(
        "validate.py",
        f"--train_dir={train_dir}",
        "--run_once",
        f"--eval_data_pattern={eval_data_pattern}",
        f"--metrics_json={metrics_path}",
        *flags,
    )
    return read_json(metrics_path)


def validated_gap(train_dir, sample_dir, model, metrics_path):
    """GAP of `model` of the run in `train_dir` on the sample's validate split (validate.py)."""
    validate = f"{sample_dir}/validate*.tfrecord"
    return validated_metrics(train_dir, validate, metrics_path, f"--eval_model={model}")["gap"]


# Runs inference.py (through binary_launcher()) with Python's allocations traced (the
# project's modules imported first, outside the trace) and prints their peak in
# bytes. Fetched predictions are numpy arrays, which tracemalloc sees;
# TensorFlow's own buffers (tf.data's autotuned prefetching, whose peak varies by
# tens of MB with the machine's load) are not counted.
_TRACED_INFERENCE = """
import atexit, os, runpy, sys, tracemalloc
sys.path.insert(0, sys.argv[1])
import tensorflow
from fewer_frames.config import command_line
from fewer_frames.evaluation import segment_metrics
from fewer_frames.inputs import readers
from fewer_frames.models import model_graph
from fewer_frames.run_dirs import checkpoints
sys.argv = [os.path.join(sys.argv[1], "inference.py"), *sys.argv[2:]]
tracemalloc.start()
# The binary ends its process itself (runtime.run), after atexit's functions.
atexit.register(lambda: print(tracemalloc.get_traced_memory()[1]))
runpy.run_path(sys.argv[0], run_name="__main__")
"""


def traced_inference_peak(*flags):
    """The peak of Python's allocations (bytes) of inference.py with `flags`."""
    result = subprocess.run(
        [binary_launcher(), "-c", _TRACED_INFERENCE, CODE_DIR, *flags],
        capture_output=True,
        text=True,
        cwd=PROJECT_ROOT,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return int(result.stdout.split()[-1])


def project_with_a_family(tmp_path, file_name, source):
    """A copy of the project (its code, scripts and requirements; not its data,
    virtual environment or runs) with a model family's file added to its models package."""
    root = tmp_path / "project"
    shutil.copytree(
        PROJECT_ROOT,
        root,
        ignore=shutil.ignore_patterns(
            ".git", ".venv", "yt8m", "__pycache__", ".*_cache", "model_HLSTM_*", "runs"
        ),
    )
    os.symlink(os.path.join(PROJECT_ROOT, ".venv"), root / ".venv")
    (root / "code_student_uniform" / "fewer_frames" / "models" / file_name).write_text(source)
    return root


def reference_frame_indices(path, frames_per_second):
    """The indices (time x `frames_per_second`) of a video's frames that other
    frames refer to: those FFmpeg decodes from the start with skip_frame=NONREF."""
    import av  # noqa: PLC0415 (the video requirements)

    with av.open(str(path)) as container:
        video = container.streams.video[0]
        video.codec_context.skip_frame = "NONREF"
        return {round(frame.time * frames_per_second) for frame in container.decode(video)}
