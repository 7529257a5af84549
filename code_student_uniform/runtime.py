"""What every binary needs around TensorFlow: threads, clear errors, atomic files."""

import contextlib
import dataclasses
import json
import os
import shutil
import signal
import sys
import tempfile
import types
import uuid

import tensorflow as tf
from absl import app


class UserError(ValueError):
    """A problem with the command line, the files or the data: reported in one line,
    without a traceback. Any other exception is a bug and keeps its traceback."""


@dataclasses.dataclass(frozen=True)
class Threads:
    """TensorFlow's thread pools (0: TensorFlow's choice) and GPU memory."""

    intra_op_threads: int = 0
    inter_op_threads: int = 0
    gpu_memory_growth: bool = True

    def session_config(self, cpu_devices=1):
        """A session's settings; `cpu_devices` logical CPU devices (CPU towers)."""
        config = tf.compat.v1.ConfigProto(
            intra_op_parallelism_threads=self.intra_op_threads,
            inter_op_parallelism_threads=self.inter_op_threads,
            allow_soft_placement=True,
            device_count={"CPU": cpu_devices},
        )
        # Take GPU memory as needed, not all of it at the start.
        config.gpu_options.allow_growth = self.gpu_memory_growth
        return config


@contextlib.contextmanager
def staging_directory(path):
    """Yields a new hidden directory beside `path` (same file system, so its
    contents rename into place); removed with what is left in it afterwards."""
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    staging = tempfile.mkdtemp(dir=folder, prefix=f".{os.path.basename(path)}.")
    try:
        yield staging
    finally:
        shutil.rmtree(staging, ignore_errors=True)


@contextlib.contextmanager
def atomic_output(path):
    """Yields a temporary path beside `path` (for a file or a directory to create);
    renames it into place when the block succeeds, removes it when it fails.
    A reader of `path` never sees a half-written output. A directory already at
    `path` is replaced whole (moved aside first: a rename cannot replace one)."""
    with staging_directory(path) as staging:
        temporary = os.path.join(staging, "output")
        yield temporary
        if os.path.isdir(temporary) and os.path.isdir(path):
            os.replace(path, os.path.join(staging, "previous"))
        os.replace(temporary, path)


def write_atomically(path, text):
    """Writes `text` to a temporary file beside `path` and renames it into place,
    through tf.io.gfile: a run directory on any TensorFlow filesystem (gs://,
    s3://, ram://, ...) gets the file where the path says, shown whole."""
    folder = path.rsplit("/", 1)[0] if "/" in path else "."
    tf.io.gfile.makedirs(folder)
    temporary = f"{path}.tmp-{uuid.uuid4().hex[:12]}"
    try:
        with tf.io.gfile.GFile(temporary, "w") as stream:
            stream.write(text)
        tf.io.gfile.rename(temporary, path, overwrite=True)
    finally:
        if tf.io.gfile.exists(temporary):
            tf.io.gfile.remove(temporary)


def write_json(path, value):
    write_atomically(path, json.dumps(value, indent=2, sort_keys=True) + "\n")


class Interrupted(BaseException):
    """SIGTERM or SIGINT: the binary unwinds (temporary outputs are removed, a
    training run saves first) and exits with 128 + the signal's number."""

    def __init__(self, signum, detail=""):
        name = signal.Signals(signum).name
        super().__init__(f"{name}: {detail}" if detail else name)
        self.signum = signum


def _raise_interrupted(signum, frame):
    raise Interrupted(signum)


@contextlib.contextmanager
def deferred_stop():
    """While inside, SIGTERM and SIGINT do not interrupt: the first sets
    `requested.signum` for the caller to stop at a safe point; after it, a second
    SIGINT (Ctrl-C again) ends the process at once."""
    requested = types.SimpleNamespace(signum=None)

    def note(signum, frame):
        if requested.signum is None:
            requested.signum = signum
            signal.signal(signal.SIGINT, signal.SIG_DFL)

    previous = {number: signal.getsignal(number) for number in (signal.SIGTERM, signal.SIGINT)}
    for number in previous:
        signal.signal(number, note)
    try:
        yield requested
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)


def run(main, graph_mode=True):
    """app.run(main) for a binary (graph mode unless told otherwise); expected
    errors end with a message and exit 1; SIGTERM and SIGINT (Ctrl-C) end it with
    a line and 128 + the signal's number, after removing temporary outputs."""

    def guarded(argv):
        if graph_mode:
            tf.compat.v1.disable_eager_execution()
        signal.signal(signal.SIGTERM, _raise_interrupted)
        signal.signal(signal.SIGINT, _raise_interrupted)
        try:
            if len(argv) > 1:
                raise UserError(f"unexpected arguments: {' '.join(argv[1:])}")
            main(argv)
        except (UserError, OSError) as error:
            print(f"ERROR: {error}", file=sys.stderr)
            sys.exit(1)
        except Interrupted as stop:
            print(f"Stopped by {stop}", file=sys.stderr)
            sys.exit(128 + stop.signum)

    app.run(guarded)
