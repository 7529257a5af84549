"""Files on any TensorFlow filesystem (local, gs://, s3://, ram://): where a path lives,
staging beside it, atomic files and directories, JSON."""

import contextlib
import json
import os
import uuid

import tensorflow as tf

from fewer_frames.system import runtime


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
        runtime.raise_if_stopped()
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
        runtime.raise_if_stopped()
        tf.io.gfile.rename(temporary, path, overwrite=True)
    finally:
        if tf.io.gfile.exists(temporary):
            tf.io.gfile.remove(temporary)


def read_json(path):
    with tf.io.gfile.GFile(path) as stream:
        return json.load(stream)


def write_json(path, value):
    write_atomically(path, json.dumps(value, indent=2, sort_keys=True) + "\n")
