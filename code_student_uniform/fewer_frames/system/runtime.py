"""What every binary needs around TensorFlow: clear errors, signals, atomic files on
any filesystem."""

import contextlib
import errno
import json
import os
import signal
import sys
import types
import uuid

import tensorflow as tf
from absl import app


class UserError(ValueError):
    """A problem with the command line, the files or the data: reported in one line,
    without a traceback. Any other exception is a bug and keeps its traceback."""


def is_local(path):
    """Whether `path` is on the local disk (no scheme, or file://)."""
    return "://" not in path or path.startswith("file://")


def local_path(path):
    """`path` as the operating system names it (file:// removed), for a local path."""
    return path[len("file://") :] if path.startswith("file://") else path


def parent_directory(path):
    """The directory holding `path`, on any TensorFlow filesystem."""
    if is_local(path):
        scheme = "file://" if path.startswith("file://") else ""
        return scheme + os.path.dirname(os.path.abspath(local_path(path)))
    return path.rstrip("/").rsplit("/", 1)[0]


def same_directory(first, second):
    if is_local(first) and is_local(second):
        return os.path.abspath(local_path(first)) == os.path.abspath(local_path(second))
    return first.rstrip("/") == second.rstrip("/")


@contextlib.contextmanager
def staging_directory(path):
    """Yields a new hidden directory beside `path` (same filesystem, so what is
    written in it renames into place), through tf.io.gfile; removed with what is
    left in it afterwards."""
    name = path.rstrip("/").rsplit("/", 1)[-1]
    staging = f"{parent_directory(path)}/.{name}.{uuid.uuid4().hex[:12]}"
    try:
        # Inside the try: a signal right after the directory appears still removes it.
        tf.io.gfile.makedirs(staging)
        yield staging
    finally:
        # Already gone (moved into place) where the filesystem renames directories.
        with contextlib.suppress(tf.errors.NotFoundError):
            tf.io.gfile.rmtree(staging)


def move_files(source, target, last=()):
    """Moves every file under the directory `source` to the same place under
    `target` (created as needed), files named in `last` after the others: how a
    directory is moved where renaming a directory is not atomic or not possible
    (object stores, ram://)."""
    moves = []
    for folder, _, files in tf.io.gfile.walk(source):
        relative = folder[len(source.rstrip("/")) :].lstrip("/")
        destination = f"{target.rstrip('/')}/{relative}" if relative else target
        tf.io.gfile.makedirs(destination)
        moves += [(f"{folder.rstrip('/')}/{name}", f"{destination}/{name}") for name in files]
    for origin, destination in sorted(moves, key=lambda move: move[0].rsplit("/")[-1] in last):
        tf.io.gfile.rename(origin, destination, overwrite=True)


@contextlib.contextmanager
def atomic_output(path):
    """Yields a temporary path beside `path` (for a file or a directory to create);
    moves it into place when the block succeeds, removes it when it fails. A
    reader of `path` never sees a half-written file; a directory is renamed
    whole on the local disk, file by file elsewhere. A directory already at
    `path` is replaced whole."""
    with staging_directory(path) as staging:
        temporary = f"{staging}/output"
        yield temporary
        if not tf.io.gfile.isdir(temporary):
            tf.io.gfile.rename(temporary, path, overwrite=True)
            return
        if tf.io.gfile.isdir(path):
            # A rename cannot replace a directory: the old one is moved aside first.
            move_directory(path, f"{staging}/previous")
        move_directory(temporary, path)


def move_directory(source, target):
    """Renames the directory `source` to `target` (which must not exist): one
    atomic rename on the local disk, file by file elsewhere."""
    if is_local(source) and is_local(target):
        os.replace(local_path(source), local_path(target))
    else:
        move_files(source, target)


def write_atomically(path, text):
    """Writes `text` to a temporary file beside `path` and renames it into place,
    through tf.io.gfile: a run directory on any TensorFlow filesystem (gs://,
    s3://, ram://, ...) gets the file where the path says, shown whole."""
    tf.io.gfile.makedirs(parent_directory(path))
    temporary = f"{path}.tmp-{uuid.uuid4().hex[:12]}"
    try:
        with tf.io.gfile.GFile(temporary, "w") as stream:
            stream.write(text)
        tf.io.gfile.rename(temporary, path, overwrite=True)
    finally:
        if tf.io.gfile.exists(temporary):
            tf.io.gfile.remove(temporary)


def read_json(path):
    with tf.io.gfile.GFile(path) as stream:
        return json.load(stream)


def write_json(path, value):
    write_atomically(path, json.dumps(value, indent=2, sort_keys=True) + "\n")


def error_summary(error):
    """One line of what went wrong: the last line of a TensorFlow error's message
    that is not the graph's context (where the op was defined, its node name)."""
    lines = [line.strip() for line in str(getattr(error, "message", error)).splitlines()]
    context = ("Graph execution error", "Detected at node", "File ", "Node:", "[[", "Hint:")
    meaningful = [line for line in lines if line and not line.startswith(context)]
    return meaningful[-1] if meaningful else type(error).__name__


class Interrupted(BaseException):
    """SIGTERM or SIGINT: the binary unwinds (temporary outputs are removed, a
    training run saves first) and exits with 128 + the signal's number."""

    def __init__(self, signum, detail=""):
        name = signal.Signals(signum).name
        super().__init__(f"{name}: {detail}" if detail else name)
        self.signum = signum


def _report_failed_clean_up(unraisable):
    print(
        "(while stopping, a clean-up left half-done failed: "
        f"{type(unraisable.exc_value).__name__}: {unraisable.exc_value})",
        file=sys.stderr,
    )


def _stopping():
    """From here on the process is stopping: a context manager the signal left
    half-entered (TensorFlow's function-graph scope) can fail when Python collects
    it, and Python would print that with a traceback; one line says it instead."""
    sys.unraisablehook = _report_failed_clean_up


def _raise_interrupted(signum, frame):
    _stopping()
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


# OSErrors about the files and disks a user gives (the rest are bugs).
_FILE_ERRNOS = {
    errno.ENOENT,
    errno.EEXIST,
    errno.EISDIR,
    errno.ENOTDIR,
    errno.EACCES,
    errno.EPERM,
    errno.EROFS,
    errno.ENOSPC,
    errno.EDQUOT,
    errno.EFBIG,
}


def _limit_reached(error):
    summary = error_summary(error)
    if isinstance(error, tf.errors.PermissionDeniedError):
        return f"permission denied: {summary}; let this user write there, or choose another path"
    if "OOM" in summary:
        return f"out of memory: {summary}; lower --batch_size"
    return f"{summary}; free space there (or choose another path) and run the same command again"


def _interruption_behind(error):
    """The Interrupted that `error` is, or that it was raised while handling: a
    signal can land inside TensorFlow's own context managers (building a graph),
    whose clean-up then fails with an error of its own (a graph stack's "nesting
    violated"); the run was still stopped by the signal, not by a bug."""
    seen = set()
    while error is not None and id(error) not in seen:
        if isinstance(error, Interrupted):
            return error
        seen.add(id(error))
        error = error.__cause__ or error.__context__
    return None


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
            reported(argv)
        except BaseException as error:
            stop = _interruption_behind(error)
            if stop is None or isinstance(error, SystemExit):
                raise  # a bug keeps its traceback; an exit already reported stays
            _stopping()
            then = "" if error is stop else f" (then, unwinding: {error_summary(error)})"
            print(f"Stopped by {stop}{then}", file=sys.stderr)
            sys.exit(128 + stop.signum)

    def reported(argv):
        try:
            if len(argv) > 1:
                raise UserError(f"unexpected arguments: {' '.join(argv[1:])}")
            main(argv)
        except UserError as error:
            print(f"ERROR: {error}", file=sys.stderr)
            sys.exit(1)
        except OSError as error:
            if error.errno not in _FILE_ERRNOS:
                raise  # not about a file the user named: a bug, with its traceback
            print(f"ERROR: {error}", file=sys.stderr)
            sys.exit(1)
        except (tf.errors.ResourceExhaustedError, tf.errors.PermissionDeniedError) as error:
            # The machine's limits, not a bug: memory, disk space, permissions.
            print(f"ERROR: {_limit_reached(error)}", file=sys.stderr)
            sys.exit(1)

    app.run(guarded)
