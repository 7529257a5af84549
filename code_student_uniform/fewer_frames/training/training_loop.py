"""Training runs, shared by train.py and train_finetune.py: the run directory and
its settings, restoring or starting the models, and the loop (logging, saving,
stopping on a signal). The graph of each mode is training_graph.py's.
"""

import contextlib
import math
import os
import time

import numpy as np
import tensorflow as tf
from absl import logging

from fewer_frames.config.settings import RunSettings
from fewer_frames.evaluation import eval_util
from fewer_frames.inputs import readers, record_checks
from fewer_frames.models import memory_estimate, model_config, model_graph
from fewer_frames.run_dirs import checkpoints, run_directory, run_files
from fewer_frames.system import runtime
from fewer_frames.system.errors import UserError
from fewer_frames.training import cluster, lease, progress, towers, training_graph


def changed_settings(before, after, prefix=""):
    """'name: before -> after' for each setting that differs between two saved dicts."""
    changes = []
    for key in sorted(set(before) | set(after)):
        old, new = before.get(key), after.get(key)
        if isinstance(old, dict) and isinstance(new, dict):
            changes += changed_settings(old, new, f"{prefix}{key}.")
        elif old != new:
            changes.append(f"{prefix}{key}: {old!r} -> {new!r}")
    return changes


# Seed log-line names of the loss fetches, in the seed's order.
LOG_NAMES = (
    ("teacher_loss", "Teacher_Loss"),
    ("rep_loss", "L_REP"),
    ("pred_loss", "L_PRED"),
    ("ce_loss", "L_CE"),
)


def format_log_line(step, metrics, loss_values, examples_per_second, progress_parts=()):
    """The seed's training line, then how far the run is (`progress_parts`).
    `metrics` maps each model to its batch metrics; with a teacher and a
    student, both are shown, each name prefixed."""
    parts = [f"training step {step}"]
    for model in sorted(metrics, key=lambda name: name != "student"):
        prefix = f"{model.capitalize()}_" if len(metrics) > 1 else ""
        values = metrics[model]
        parts += [
            f"{prefix}Hit@1: {values['hit_at_one']:.2f}",
            f"{prefix}PERR: {values['perr']:.2f}",
            f"{prefix}GAP: {values['gap']:.2f}",
        ]
    parts += [f"{label}: {loss_values[key]:.6g}" for key, label in LOG_NAMES if key in loss_values]
    parts.append(f"Examples/sec: {examples_per_second:.1f}")
    return "| ".join([*parts, *progress_parts])


def scalar_summary(values):
    summary = tf.compat.v1.Summary()
    for tag, value in values.items():
        summary.value.add(tag=tag, simple_value=float(value))
    return summary


def _teacher_checkpoint(config, teacher_dir, requested):
    """The --teacher_dir checkpoint of a serial run, after checking its teacher fits."""
    if not teacher_dir:
        raise UserError("--training_mode=serial needs --teacher_dir (a run holding a teacher)")
    teacher_config = run_directory.saved_config(requested, teacher_dir)
    if "teacher" not in teacher_config.models:
        raise UserError(f"--teacher_dir={teacher_dir} holds no teacher")
    differences = model_config.teacher_differences(teacher_config, config)
    if differences:
        raise UserError(
            f"the teacher in {teacher_dir} was built with other settings: {differences}"
        )
    latest = checkpoints.latest_checkpoint(teacher_dir)
    if not latest:
        raise UserError(f"--teacher_dir={teacher_dir} holds no checkpoint")
    return latest


def _initialize(session, config, mode, latest, teacher_dir, requested):
    """Restores the run's last checkpoint, or starts anew (serial: with the teacher)."""
    session.run(tf.compat.v1.global_variables_initializer())
    session.run(tf.compat.v1.local_variables_initializer())
    global_step = tf.compat.v1.train.get_global_step()
    if latest:
        required = [global_step, *model_graph.variables_of(config.models)]
        others = [var for var in tf.compat.v1.global_variables() if var not in required]
        fresh = []

        def restore(path):
            fresh[:] = checkpoints.restore(session, path, required, optional=others)

        # A checkpoint that cannot be read is skipped for the newest one that can.
        latest = checkpoints.older_intact(os.path.dirname(latest), latest, restore)
        if fresh:
            logging.info("%d optimizer variables are not in %s and start fresh", len(fresh), latest)
        logging.info("Resumed from %s", latest)
    elif mode == "serial":
        source = _teacher_checkpoint(config, teacher_dir, requested)
        checkpoints.restore(
            session, source, model_graph.model_variables(model_config.TEACHER_SCOPE)
        )
        logging.info("Restored the frozen teacher from %s", source)


def run_training(
    mode,
    train_dir,
    teacher_dir=None,
    requested=None,
    settings=RunSettings(),
):
    """Trains the models of `mode` into `train_dir`; returns the final global step.

    `requested` gives the model settings of a new run (an existing run keeps its
    own); `settings` the rest. With TF_CONFIG set, this process plays its part in
    a cluster (cluster.py).
    """
    requested = requested or model_config.RequestedModel()
    role = cluster.role_from_environment()
    if role and role.job == "ps":
        cluster.serve_parameters(role)
        return None
    chief = role is None or role.is_chief
    # One trainer per run directory: the chief holds its lease (lease.py).
    with lease.held(train_dir) if chief else contextlib.nullcontext():
        return _train(role, chief, mode, train_dir, teacher_dir, requested, settings)


def _train(role, chief, mode, train_dir, teacher_dir, requested, settings):
    models, _ = training_graph.MODES[mode]
    training = settings.training
    if chief:
        latest = run_directory.prepare_run_directory(
            train_dir, training.start_new_model, training.overwrite
        )
    else:
        latest = checkpoints.latest_checkpoint(train_dir)
    saved = run_directory.saved_config(requested, train_dir) if latest else None
    if latest and chief:
        previous = run_files.saved_run_settings(train_dir)
        changes = changed_settings(previous, settings.values(mode)) if previous else []
        if changes:
            logging.info("Resuming with other training settings: %s", "; ".join(changes))
    if mode == "finetune" and not latest:
        raise UserError(
            f"{train_dir} holds no checkpoint to fine-tune: run train_convert_model.py "
            "(run_convert_model.sh) first"
        )
    config = requested.run_config(models, saved, train_dir)
    worker_device = role.device if role else ""
    devices = towers.tower_devices(training.num_gpu, training.num_cpu_towers, worker_device)
    towers.check_batch_size(settings.inputs.batch_size, len(devices))
    session_config = settings.session.session_config(cpu_devices=training.num_cpu_towers)
    if role:
        session_config = role.session_config(session_config)
    server = role.start_server(session_config) if role else None
    if training.deterministic:
        # Same seed, same machine and threads: bit-identical checkpoints and metrics.
        tf.config.experimental.enable_op_determinism()
    with tf.Graph().as_default(), tf.compat.v1.device(role.device_setter() if role else None):
        tf.compat.v1.set_random_seed(training.random_seed)
        reader = config.reader(is_training=True, segment_size=settings.inputs.segments())
        bad_records = record_checks.BadRecordCounter()
        with tf.compat.v1.device(f"{worker_device}/device:CPU:0"):  # the input stays on the CPU
            batch = readers.input_tensors(
                settings.inputs,
                reader,
                training.train_data_pattern,
                num_epochs=training.num_epochs or None,
                shuffle=True,
                seed=training.random_seed + (role.index if role else 0),
                deterministic=training.deterministic,
                # Towers take equal slices: a last, smaller batch is left out.
                drop_remainder=len(devices) > 1,
                bad_records=bad_records,
            )
        graph = training_graph.build_training_graph(config, mode, batch, settings, devices)
        saver = checkpoints.make_saver(max_to_keep=training.keep_checkpoint_max) if chief else None
        target = server.target if server else ""
        with (
            tf.compat.v1.Session(target, config=session_config) as session,
            _explained_out_of_memory(config, settings.inputs.batch_size, len(devices)),
        ):
            if chief:
                _initialize(session, config, mode, latest, teacher_dir, requested)
                run_files.write_model_config(train_dir, config)
                run_files.save_run_settings(train_dir, settings, mode)
            else:
                logging.info("worker %s waiting for the chief to initialise", role.device)
                cluster.wait_for_chief(session)
            if role:
                devices = sorted({variable.device for variable in tf.compat.v1.global_variables()})
                logging.info("variables on %s", ", ".join(devices))
            files = readers.match_files(training.train_data_pattern)
            workers = (
                sum(len(role.cluster.get(job, [])) for job in ("worker", *cluster.CHIEF_JOBS))
                if role
                else 1
            )
            with record_checks.explained_input_errors(reader, files):
                return _loop(
                    session,
                    graph,
                    saver,
                    train_dir,
                    settings,
                    distributed_run=role is not None,
                    files=files,
                    workers=workers,
                    drop_remainder=len(devices) > 1,
                    bad_records=bad_records,
                )


@contextlib.contextmanager
def _explained_out_of_memory(config, batch_size, towers):
    try:
        yield
    except tf.errors.ResourceExhaustedError as error:
        if "OOM" not in error.message:
            raise  # no space left on a disk: runtime.run names it
        raise memory_estimate.out_of_memory_error(error, config, batch_size, towers) from error


def _loop(
    session,
    graph,
    saver,
    train_dir,
    settings,
    distributed_run=False,
    files=(),
    workers=1,
    drop_remainder=False,
    bad_records=None,
):
    """Trains until --max_steps or the end of the data. Without a saver (a
    non-chief worker) it writes neither checkpoints nor summaries, and counts
    no videos for its progress. A process of a distributed run ends by logging
    the digest of the weights it sees."""
    writer = None
    if saver:
        # TensorBoard's graph: the one the checkpoints' .meta files hold, made once.
        meta_graph = checkpoints.meta_graph(saver, session.graph)
        writer = tf.compat.v1.summary.FileWriter(train_dir)
        writer.add_event(tf.compat.v1.Event(graph_def=meta_graph.graph_def.SerializeToString()))
        writer.add_meta_graph(meta_graph)
    training = settings.training
    step = session.run(graph["global_step"])
    saved_step = step
    if training.max_steps and step >= training.max_steps:
        logging.info("Global step %d already reached --max_steps=%d", step, training.max_steps)
        return step
    logging.info("Training from global step %d", step)
    batch_size = settings.inputs.batch_size
    if saver:
        run_progress = progress.training_progress(
            training, batch_size, step, files, workers, drop_remainder
        )
    else:
        run_progress = progress.Progress(step, training.max_steps or None, None, batch_size, 0)

    def last_checkpoint():
        if not checkpoints.latest_checkpoint(train_dir):
            return f"no checkpoint in {train_dir} yet"
        return f"last checkpoint: step {saved_step} in {train_dir}"

    def save():
        if saver is None:
            return step, time.time()
        # Weights can overflow in the update after a finite loss: check before saving.
        if not session.run(graph["weights_finite"]):
            raise UserError(
                f"weights became NaN or infinite by global step {step}; stopped without saving "
                f"({last_checkpoint()}). Try a lower --base_learning_rate or "
                "--clip_gradient_norm."
            )
        # Named by the step read at save time: other workers may have moved it on.
        path = checkpoints.save_checkpoint(saver, session, train_dir, graph["global_step"])
        return checkpoints.checkpoint_step(path), time.time()

    last_save = time.time()
    fetch_every = {
        "train_op": graph["train_op"],
        "step": graph["step_after_update"],
        "losses": graph["losses"],
        "total_losses": graph["total_losses"],
    }
    fetch_logged = dict(
        fetch_every,
        predictions=graph["predictions"],
        labels=graph["labels"],
        summary=graph["summary"],
    )
    # SIGTERM (preemption) or Ctrl-C: the step in flight ends, then a checkpoint.
    with runtime.deferred_stop() as stop:
        try:
            while (not training.max_steps or step < training.max_steps) and stop.signum is None:
                log_now = (step + 1) % max(training.log_every_steps, 1) == 0
                start = time.time()
                values = session.run(fetch_logged if log_now else fetch_every)
                seconds = time.time() - start
                step = int(values["step"])
                checked = {**values["losses"], **values["total_losses"]}
                bad = [name for name, value in checked.items() if not math.isfinite(value)]
                if bad:
                    raise UserError(
                        f"{', '.join(bad)} became {checked[bad[0]]} at global step {step}; "
                        f"stopped without saving ({last_checkpoint()}). Try a lower "
                        "--base_learning_rate or --clip_gradient_norm."
                    )
                if log_now:
                    speed = batch_size / max(seconds, 1e-9)
                    _log_step(writer, step, values, speed, run_progress.text(step))
                if (
                    training.checkpoint_every_steps and step % training.checkpoint_every_steps == 0
                ) or (time.time() - last_save >= training.checkpoint_every_secs):
                    saved_step, last_save = save()
        except tf.errors.OutOfRangeError:
            logging.info("Done: read --num_epochs=%d of the training data", training.num_epochs)
        if step != saved_step or not checkpoints.latest_checkpoint(train_dir):
            saved_step, last_save = save()
    if writer:
        writer.close()
    skipped = (
        f"; skipped {bad_records.count} bad records"
        if bad_records and settings.inputs.skip_bad_records
        else ""
    )
    if saver:
        logging.info("Final checkpoint at global step %d in %s%s", saved_step, train_dir, skipped)
    else:
        logging.info("Worker done at global step %d%s", step, skipped)
    if distributed_run:  # which weights this process ended with
        logging.info("weights digest %r", float(session.run(graph["weights_digest"])))
    if stop.signum is not None:
        saved = f"checkpoint at step {saved_step} in {train_dir}" if saver else "worker stopped"
        raise runtime.Interrupted(
            stop.signum, f"at global step {step}; {saved}; the same command resumes"
        )
    return step


def batch_metrics(predictions, labels):
    """Hit@1, PERR and GAP of one batch (its classes ranked once for all three)."""
    metrics = eval_util.EvaluationMetrics(np.shape(predictions)[1])
    batch = metrics.accumulate(predictions, labels, loss=0.0)
    return {"hit_at_one": batch["hit_at_one"], "perr": batch["perr"], "gap": metrics.get()["gap"]}


def _log_step(writer, step, values, examples_per_second, progress_parts=()):
    metrics = {
        model: batch_metrics(predictions, values["labels"])
        for model, predictions in values["predictions"].items()
    }
    loss_values = {key: float(np.asarray(value)) for key, value in values["losses"].items()}
    logging.info(format_log_line(step, metrics, loss_values, examples_per_second, progress_parts))
    if writer is None:
        return
    writer.add_summary(values["summary"], step)
    # One model: train/<metric>; a teacher and a student: train/<model>_<metric>.
    tags = {"train/examples_per_second": examples_per_second}
    for model, model_metrics in metrics.items():
        prefix = f"train/{model}_" if len(metrics) > 1 else "train/"
        tags.update({prefix + name: value for name, value in model_metrics.items()})
    writer.add_summary(scalar_summary(tags), step)
    writer.flush()
