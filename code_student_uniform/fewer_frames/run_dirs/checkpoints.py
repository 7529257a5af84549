"""Checkpoints: finding them (unreadable ones skipped), saving, restoring a model's
variables by name, and the `checkpoint` index and its repair."""

import contextlib
import os
import re

import tensorflow as tf
from absl import logging

from fewer_frames.models import model_graph
from fewer_frames.run_dirs import run_files
from fewer_frames.system.errors import UserError, error_summary


class UnreadableCheckpointError(UserError):
    """A checkpoint whose files cannot be read (truncated, corrupt, a missing shard)."""

    def __init__(self, path, problem):
        super().__init__(f"cannot read checkpoint {path}: {problem}")
        self.path, self.problem = path, problem


def checkpoint_step(checkpoint_path):
    """The global step in a checkpoint's name (model.ckpt-<step>)."""
    return int(checkpoint_path.rsplit("-", 1)[1])


def present_checkpoints(directory):
    """The checkpoints whose index file is in `directory`, newest step first."""
    pattern = os.path.join(directory, f"{run_files.CHECKPOINT_PREFIX}-*.index")
    prefixes = [path[: -len(".index")] for path in tf.io.gfile.glob(pattern)]
    return sorted(
        (prefix for prefix in prefixes if prefix.rsplit("-", 1)[1].isdigit()),
        key=checkpoint_step,
        reverse=True,
    )


def latest_checkpoint(directory):
    """The checkpoint the `checkpoint` index names; an index that cannot be parsed,
    or that names no checkpoint present, is rebuilt from the checkpoints present."""
    if not tf.io.gfile.isdir(directory):
        return None
    index = os.path.join(directory, run_files.CHECKPOINT_INDEX)
    latest = tf.train.latest_checkpoint(directory)
    if latest or not tf.io.gfile.exists(index):
        return latest
    present = present_checkpoints(directory)
    if not present:
        return None
    state = tf.compat.v1.train.get_checkpoint_state(directory)  # None: unparseable
    reason = (
        "it cannot be parsed"
        if state is None
        else f"it names {os.path.basename(state.model_checkpoint_path)}, which is not there"
    )
    tf.compat.v1.train.update_checkpoint_state(
        directory,
        os.path.basename(present[0]),
        all_model_checkpoint_paths=[os.path.basename(path) for path in reversed(present)],
    )
    logging.warning("Rebuilt %s from the checkpoints present: %s", index, reason)
    return present[0]


def older_intact(directory, newest, restore_one):
    """Calls `restore_one(path)` on `newest`, then on each older checkpoint present
    while they are unreadable, saying which it skipped and why; returns the path
    restored. Unreadable everywhere: a UserError naming each."""
    candidates = [newest] + [
        path
        for path in present_checkpoints(directory)
        if checkpoint_step(path) < checkpoint_step(newest)
    ]
    problems = []
    for path in candidates:
        try:
            restore_one(path)
        except UnreadableCheckpointError as error:
            logging.warning("Skipped checkpoint %s: %s", path, error.problem)
            problems.append(f"{os.path.basename(path)}: {error.problem}")
            continue
        if problems:
            logging.warning("Using %s, the newest checkpoint that reads whole", path)
        return path
    raise UserError(f"no checkpoint in {directory} can be read ({'; '.join(problems)})")


def save_checkpoint(saver, session, train_dir, global_step):
    """Saves a checkpoint named by the step `global_step` holds; returns its path.
    A save that fails (no space left, no permission, ...) leaves none of its files
    behind, keeps the previous checkpoint, and stops the run with one line."""
    prefix = f"{train_dir.rstrip('/')}/{run_files.CHECKPOINT_PREFIX}"
    step = session.run(global_step)
    try:
        path = saver.save(session, prefix, global_step=global_step, write_meta_graph=False)
        meta = meta_graph(saver, session.graph)
        tf.io.write_graph(meta, os.path.dirname(path), os.path.basename(path) + ".meta", False)
        return path
    except (tf.errors.OpError, OSError) as error:
        reason = error_summary(error)
        # Its files (other workers may have moved the step on while it saved).
        for path in tf.io.gfile.glob(f"{prefix}-*"):
            digits = re.match(r"\d+", path[len(prefix) + 1 :])
            if digits and int(digits.group()) >= step:
                with contextlib.suppress(tf.errors.OpError):
                    (tf.io.gfile.rmtree if tf.io.gfile.isdir(path) else tf.io.gfile.remove)(path)
        latest = latest_checkpoint(train_dir)
        kept = f"the checkpoint of step {checkpoint_step(latest)}" if latest else "no checkpoint"
        raise UserError(
            f"cannot write the checkpoint of global step {step} in {train_dir} ({reason}); "
            f"no part of it is left, {kept} is kept. Free space in that directory or let "
            "this user write there, and the same command resumes"
        ) from error


# The MetaGraphDef of the last (saver, graph) exported, with the graph's version
# (its op count) then: a training loop saves one graph at every checkpoint, and
# serializing it took longer than saving the tiny tests' weights.
_last_meta_graph = [None, None]


def meta_graph(saver, graph):
    """The MetaGraphDef that `saver.save` writes beside each checkpoint (the graph,
    its collections and the saver), made once per state of `graph`."""
    key = (saver, graph, graph.version)
    if _last_meta_graph[0] != key:
        with graph.as_default():
            _last_meta_graph[:] = key, saver.export_meta_graph()
    return _last_meta_graph[1]


def make_saver(var_list=None, max_to_keep=5):
    return tf.compat.v1.train.Saver(
        var_list=var_list, max_to_keep=max_to_keep, save_relative_paths=True
    )


def restore(session, checkpoint_path, required, optional=()):
    """Restores `required` variables (all must be in the checkpoint) and those of
    `optional` that are there with the same shape; returns the optional
    variables it did not restore.

    An integer variable saved with another integer type (the original code's
    int32 global step; ours is int64) is loaded by value.
    """
    if not tf.io.gfile.exists(checkpoint_path + ".index"):
        raise UnreadableCheckpointError(checkpoint_path, f"{checkpoint_path}.index is missing")
    try:
        # (NewCheckpointReader takes the prefix as it is: load_checkpoint would take a
        # prefix for a folder on filesystems that list prefixes as folders, like ram://.)
        reader = tf.compat.v1.train.NewCheckpointReader(checkpoint_path)
        available = reader.get_variable_to_shape_map()
        saved_dtypes = reader.get_variable_to_dtype_map()
    except (tf.errors.OpError, ValueError) as error:
        raise UnreadableCheckpointError(checkpoint_path, error_summary(error)) from error
    missing = [var.op.name for var in required if var.op.name not in available]
    if missing:
        raise UserError(
            f"checkpoint {checkpoint_path} lacks {len(missing)} variables of this model "
            f"(e.g. {', '.join(missing[:3])}); it was written by a different model or mode"
        )
    wrong_shape = [
        f"{var.op.name} {available[var.op.name]} vs {var.shape.as_list()}"
        for var in required
        if available[var.op.name] != var.shape.as_list()
    ]
    if wrong_shape:
        raise UserError(
            f"checkpoint {checkpoint_path} has other shapes than this model: "
            f"{'; '.join(wrong_shape[:3])}"
        )
    found = [
        var
        for var in optional
        if available.get(var.op.name) == var.shape.as_list()
        and saved_dtypes[var.op.name] == var.dtype.base_dtype
    ]
    by_name, by_value = [], []
    for var in list(required) + found:
        saved_dtype, dtype = saved_dtypes[var.op.name], var.dtype.base_dtype
        if saved_dtype == dtype:
            by_name.append(var)
        elif saved_dtype.is_integer and dtype.is_integer:
            by_value.append(var)
        else:
            raise UserError(
                f"checkpoint {checkpoint_path} holds {var.op.name} as {saved_dtype.name}, "
                f"this model as {dtype.name}"
            )
    try:
        if by_name:
            tf.compat.v1.train.Saver(var_list=by_name).restore(session, checkpoint_path)
        for var in by_value:
            var.load(reader.get_tensor(var.op.name), session)
        model_graph.fill_precision_copies(session, by_name + by_value)
    except (
        tf.errors.OutOfRangeError,
        tf.errors.DataLossError,
        tf.errors.NotFoundError,
        ValueError,  # the files went (a trainer's rotation) after they were read above
    ) as error:
        raise UnreadableCheckpointError(checkpoint_path, error_summary(error)) from error
    return [var for var in optional if var not in found]


def restore_models(session, checkpoint_path, models):
    """Restores the global step and the variables of `models` from `checkpoint_path`."""
    variables = [tf.compat.v1.train.get_or_create_global_step()]
    restore(session, checkpoint_path, variables + model_graph.variables_of(models))


def restore_latest(session, directory, models, checkpoint_path=""):
    """`restore_models` from `checkpoint_path` if given (an unreadable one is an
    error), else from the latest checkpoint in `directory` that reads whole;
    returns the path restored."""
    if checkpoint_path:
        restore_models(session, checkpoint_path, models)
        return checkpoint_path
    latest = latest_checkpoint(directory)
    if not latest:
        raise UserError(f"{directory} holds no checkpoint")
    return older_intact(directory, latest, lambda path: restore_models(session, path, models))
