"""How a binary runs: its main in graph mode, bad input and machine limits reported
in one line, SIGTERM and Ctrl-C ending it as stopped (outputs never half-written)."""

import atexit
import contextlib
import errno
import gc
import os
import signal
import sys
import time
import types

import tensorflow as tf
from absl import app

from fewer_frames.system.errors import UserError, error_summary


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


# The signals this process received: the first stopped it, even where TensorFlow's
# C++ code caught the Interrupted and raised an error of its own in its place (a
# bare TypeError from nest.flatten), leaving no trace of it. Numbers, not the
# exceptions: a traceback kept here would keep the interrupted frames alive.
_received_signums = []


def _raise_interrupted(signum, frame):
    _stopping()
    _received_signums.append(signum)
    raise Interrupted(signum)


def raise_if_stopped():
    """Raises the Interrupted of a signal this process received, if any: where an
    output is about to be put in place, so that a signal whose Interrupted some
    code swallowed whole (raised inside an import, reported as unraisable)
    still leaves no output."""
    if _received_signums:
        raise Interrupted(_received_signums[0], "before an output was put in place")


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


_IMPORTED = time.monotonic()


def process_seconds():
    """Seconds since this process started (from /proc on Linux, to 10 ms; else
    since this module was imported)."""
    try:
        with open("/proc/self/stat") as stat, open("/proc/uptime") as uptime:
            # The fields after the name in parentheses; the 22nd is the start time.
            started = int(stat.read().rsplit(")", 1)[1].split()[19])
            return float(uptime.read().split()[0]) - started / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return time.monotonic() - _IMPORTED


# process_seconds() when the binary's main began: the interpreter's start, the
# imports (TensorFlow's about all of it) and the flags.
main_started = 0.0


def run(main, graph_mode=True):
    """app.run(main) for a binary (graph mode unless told otherwise); expected
    errors end with a message and exit 1; SIGTERM and SIGINT (Ctrl-C) end it with
    a line and 128 + the signal's number, after removing temporary outputs."""

    def guarded(argv):
        global main_started
        main_started = process_seconds()
        if graph_mode:
            tf.compat.v1.disable_eager_execution()
        signal.signal(signal.SIGTERM, _raise_interrupted)
        signal.signal(signal.SIGINT, _raise_interrupted)
        try:
            reported(argv)
            raise_if_stopped()  # a signal whose Interrupted was swallowed whole
        except BaseException as error:
            stop = _interruption_behind(error)
            if stop is None and _received_signums:
                stop = Interrupted(_received_signums[0])
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

    code = 0
    try:
        app.run(guarded)
    except SystemExit as exit:
        code = exit.code
    _exit_at_once(code)


def _exit_at_once(code):
    """Ends the process as the interpreter would, less its teardown of TensorFlow's
    modules (about 1.4 s of every run on a CPU machine), once every output is
    closed: after a signal, what it left half-done is collected first, so that
    its clean-ups run (a failing one in a line, _stopping); atexit's functions run
    (absl's log flushes) and the streams flush."""
    if _received_signums:
        gc.collect()
    if code is not None and not isinstance(code, int):
        print(code, file=sys.stderr)
        code = 1
    atexit._run_exitfuncs()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code or 0)
