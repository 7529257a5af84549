"""Run directories and checkpoints: find, restore, start anew, convert to student-only."""

import contextlib
import os
import re

import tensorflow as tf
from absl import logging

import model_graph
import run_config
import runtime
from runtime import UserError

CHECKPOINT_PREFIX = "model.ckpt"
# The settings a training run was started with (run_config.MODEL_FLAGS_FILE: its models').
TRAIN_FLAGS_FILE = "train_flags.json"
# What a run leaves in its directory; removed by --start_new_model --overwrite.
RUN_FILES = (
    "checkpoint",
    f"{CHECKPOINT_PREFIX}-*",
    "events.out.tfevents.*",
    run_config.MODEL_FLAGS_FILE,
    TRAIN_FLAGS_FILE,
)


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
    pattern = os.path.join(directory, f"{CHECKPOINT_PREFIX}-*.index")
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
    index = os.path.join(directory, "checkpoint")
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
    prefix = f"{train_dir.rstrip('/')}/{CHECKPOINT_PREFIX}"
    step = session.run(global_step)
    try:
        return saver.save(session, prefix, global_step=global_step)
    except (tf.errors.OpError, OSError) as error:
        reason = runtime.error_summary(error)
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


def make_saver(var_list=None, max_to_keep=5):
    return tf.compat.v1.train.Saver(
        var_list=var_list, max_to_keep=max_to_keep, save_relative_paths=True
    )


def clear_run(directory):
    """Removes a previous run's checkpoints, events and model flags from `directory`."""
    for pattern in RUN_FILES:
        for path in tf.io.gfile.glob(os.path.join(directory, pattern)):
            tf.io.gfile.remove(path)
    evaluations = os.path.join(directory, "eval")
    if tf.io.gfile.isdir(evaluations):
        tf.io.gfile.rmtree(evaluations)


def prepare_run_directory(directory, start_new_model, overwrite):
    """Returns the checkpoint to resume from, or None to start a new model.

    `start_new_model` on a directory with checkpoints refuses unless `overwrite`.
    """
    latest = latest_checkpoint(directory)
    if start_new_model and latest:
        if not overwrite:
            raise UserError(
                f"{directory} already holds checkpoints (latest {os.path.basename(latest)}); "
                "--start_new_model would replace them: add --overwrite, or choose another "
                "--train_dir, or drop --start_new_model to resume"
            )
        logging.info("--overwrite: removing the previous run in %s", directory)
        clear_run(directory)
        latest = None
    tf.io.gfile.makedirs(directory)
    return latest


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
        raise UnreadableCheckpointError(checkpoint_path, runtime.error_summary(error)) from error
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
        raise UnreadableCheckpointError(checkpoint_path, runtime.error_summary(error)) from error
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


def saved_config(requested, directory):
    """The config saved in a run directory; for a directory the original code
    trained (checkpoints, no model_flags.json), see `original_run_config`."""
    path = os.path.join(directory, run_config.MODEL_FLAGS_FILE)
    if tf.io.gfile.exists(path):
        return run_config.ModelConfig.read(path)
    checkpoint = tf.train.latest_checkpoint(directory) if tf.io.gfile.isdir(directory) else None
    if checkpoint:
        return original_run_config(requested, directory, checkpoint)
    raise UserError(
        f"{path} does not exist: {directory} holds no trained run "
        "(train into it first, or point --train_dir at a run directory)"
    )


def existing_run(requested, directory):
    """The config of the run in `directory`, with the settings `requested` gives."""
    saved = saved_config(requested, directory)
    return requested.run_config(saved.models, saved, directory)


def scored_run(requested, directory):
    """(the config of the run in `directory` holding only the model to score,
    that model's name)."""
    config = existing_run(requested, directory)
    scored = requested.scored_model(config, directory)
    return config.with_models([scored]), scored


def original_run_config(requested, directory, checkpoint):
    """The config of a run directory written by the original code.

    Such a directory has checkpoints but no model_flags.json. Its models are
    the scopes present in the checkpoint (`model/`, `model_student/`); every
    setting is the requested one (the original's defaults where not given),
    except that the class count, unless --dataset_version or --num_classes is
    given, is read from the checkpoint's classifier (the original hard-wired
    4716 and told users to edit it).
    """
    try:
        shapes = tf.compat.v1.train.NewCheckpointReader(checkpoint).get_variable_to_shape_map()
    except (tf.errors.OpError, ValueError) as error:
        raise UserError(f"cannot read checkpoint {checkpoint}: {error}") from error
    models = [
        name
        for name, scope in (
            ("teacher", run_config.TEACHER_SCOPE),
            ("student", run_config.STUDENT_SCOPE),
        )
        if any(variable.startswith(scope + "/") for variable in shapes)
    ]
    if not models:
        raise UserError(
            f"{checkpoint} holds neither a teacher (model/) nor a student (model_student/), "
            f"and {directory} has no {run_config.MODEL_FLAGS_FILE}: it is not a run of this "
            "project or of the original code"
        )
    config = requested.new_config(models)
    if "num_classes" not in requested.given:
        classes = _classes_in_checkpoint(shapes, run_config.scopes_of(models)[0])
        if classes:
            config.num_classes = classes
    logging.info(
        "%s has no %s: reading it as a run of the original code (%s; settings from the "
        "command line, %d classes)",
        directory,
        run_config.MODEL_FLAGS_FILE,
        " and ".join(models),
        config.num_classes,
    )
    return config


def _classes_in_checkpoint(variable_shapes, scope):
    """The class count of a checkpoint's classifier (MoE or logistic), or None."""
    prefix = f"{scope}/classifier/"
    gates = variable_shapes.get(prefix + "gates/weights")
    experts = variable_shapes.get(prefix + "experts/weights")
    if gates and experts:  # classes * (mixtures + 1) gate columns, classes * mixtures experts
        return gates[-1] - experts[-1]
    logistic = variable_shapes.get(prefix + "logistic/weights")
    return logistic[-1] if logistic else None


def default_finetune_dir(train_dir):
    """The seed's convention: the train directory's name with `train` -> `finetune`."""
    path = os.path.normpath(train_dir) if runtime.is_local(train_dir) else train_dir.rstrip("/")
    head, name = path.rsplit("/", 1) if "/" in path else ("", path)
    name = name + "_finetune" if "train" not in name else "finetune".join(name.rsplit("train", 1))
    return f"{head}/{name}" if head else name


def convert_to_student(config, train_dir, finetune_dir, overwrite=False):
    """Writes a student-only checkpoint (student variables, names unchanged, global
    step kept) of the latest checkpoint in `train_dir`, whose `config` is given,
    into `finetune_dir`.

    Builds the student from the config; reads no training data. The new directory
    is written beside the target and renamed into place. Returns the path of the
    new checkpoint.
    """
    if "student" not in config.models:
        raise UserError(f"{train_dir} holds no student (models: {', '.join(config.models)})")
    source = latest_checkpoint(train_dir)
    if not source:
        raise UserError(f"{train_dir} holds no checkpoint to convert; run the training first")
    if runtime.same_directory(finetune_dir, train_dir):
        raise UserError("--finetune_dir must differ from --train_dir")
    if latest_checkpoint(finetune_dir) and not overwrite:
        raise UserError(f"{finetune_dir} already holds a checkpoint; add --overwrite to replace it")
    student_config = config.with_models(["student"])
    step = checkpoint_step(source)
    with runtime.staging_directory(finetune_dir) as staging:
        with tf.Graph().as_default():
            global_step = tf.compat.v1.train.get_or_create_global_step()
            model_graph.build_models(student_config, model_graph.placeholder_batch(student_config))
            variables = model_graph.model_variables(run_config.STUDENT_SCOPE) + [global_step]
            with tf.compat.v1.Session() as session:
                restore(session, source, variables)
                saved = make_saver(variables).save(
                    session, os.path.join(staging, CHECKPOINT_PREFIX), global_step=step
                )
        student_config.save(staging)
        if not tf.io.gfile.exists(finetune_dir):
            runtime.move_directory(staging, finetune_dir)
        else:
            clear_run(finetune_dir)
            # The `checkpoint` index goes last: it only ever names complete files.
            runtime.move_files(staging, finetune_dir, last=("checkpoint",))
    logging.info("Converted %s (step %d) to student-only %s", source, step, finetune_dir)
    return os.path.join(finetune_dir, os.path.basename(saved))
