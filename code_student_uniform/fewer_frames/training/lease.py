"""One trainer per run directory: the chief holds a lease file while it trains.

`trainer_lease.json` in the run directory names the holder (host, process id,
start time) and the time it was last refreshed (every REFRESH_SECONDS while
the trainer runs). A second trainer on the directory stops with a message
naming the holder. A lease whose process is gone (same host), or that was not
refreshed for STALE_SECONDS (any host, e.g. a preempted machine), is taken
over with a log line. Evaluators never take it. Written through tf.io.gfile,
so it works in cloud storage as on local disk.
"""

import contextlib
import os
import socket
import threading
import time

import tensorflow as tf
from absl import logging

from fewer_frames.run_dirs import run_files
from fewer_frames.system.errors import UserError, error_summary

REFRESH_SECONDS = 60
STALE_SECONDS = 300


def _process_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _holder_text(holder):
    started = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(holder.get("started", 0)))
    return f"host {holder.get('host')} process {holder.get('pid')} (since {started})"


def live_holder(directory, now=None):
    """The lease's holder if a live trainer other than this process holds it;
    None if there is none, it is ours, or it is stale (logged)."""
    holder = run_files.read_lease(directory)
    if not holder:
        return None
    now = now or time.time()
    host, pid = holder.get("host"), holder.get("pid")
    if host == socket.gethostname() and pid == os.getpid():
        return None
    if host == socket.gethostname() and not _process_alive(pid):
        logging.info(
            "Taking over the lease of %s in %s: that process is gone",
            _holder_text(holder),
            directory,
        )
        return None
    silent = now - holder.get("refreshed", 0)
    if silent > STALE_SECONDS:
        logging.info(
            "Taking over the lease of %s in %s: not refreshed for %.0f s",
            _holder_text(holder),
            directory,
            silent,
        )
        return None
    return holder


def check_free(directory, action):
    """Raises a UserError naming the holder if a live trainer holds `directory`."""
    holder = live_holder(directory)
    if holder:
        raise UserError(
            f"{directory} is being trained by {_holder_text(holder)}, lease refreshed "
            f"{time.time() - holder.get('refreshed', 0):.0f} s ago; {action}: stop that "
            f"trainer or use another --train_dir (a lease not refreshed for {STALE_SECONDS} s "
            "is taken over)"
        )


@contextlib.contextmanager
def held(directory):
    """Holds the lease of `directory` while inside; refreshed in the background."""
    check_free(directory, "not starting a second trainer")
    tf.io.gfile.makedirs(directory)
    path = os.path.join(directory, run_files.LEASE_FILE)
    holder = {"host": socket.gethostname(), "pid": os.getpid(), "started": time.time()}
    holder["refreshed"] = holder["started"]
    run_files.write_lease(directory, holder)

    def ours(found):
        return bool(found) and all(
            found.get(key) == holder[key] for key in ("host", "pid", "started")
        )

    if not ours(run_files.read_lease(directory)):  # another trainer wrote at the same moment
        check_free(directory, "not starting a second trainer")
    stop = threading.Event()

    def refresh():
        while not stop.wait(REFRESH_SECONDS):
            holder["refreshed"] = time.time()
            try:
                run_files.write_lease(directory, holder)
            except (OSError, tf.errors.OpError) as error:
                logging.warning("could not refresh the lease %s: %s", path, error)

    thread = threading.Thread(target=refresh, name="lease-refresh", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()
        if ours(run_files.read_lease(directory)):
            try:
                tf.io.gfile.remove(path)
            except (OSError, tf.errors.OpError) as error:
                # Not to hide why the run ended (a read-only directory, say).
                logging.warning(
                    "could not remove the lease %s (%s); another trainer takes it over once "
                    "it is %d s old",
                    path,
                    error_summary(error),
                    STALE_SECONDS,
                )
