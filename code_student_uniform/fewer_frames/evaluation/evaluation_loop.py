"""The evaluation loop shared by validate.py and eval_finetune.py.

Restores the models a run directory holds, scores one of them on a whole
evaluation set (Hit@1, PERR, GAP, mAP, loss, and L_REP against the teacher when
the run has both), logs and writes TensorBoard summaries under
<train_dir>/eval, and optionally a metrics JSON. Either once, or once for every
new checkpoint until stopped.
"""

import os
import time

import numpy as np
import tensorflow as tf
from absl import logging

from fewer_frames.config.settings import EvaluationSettings
from fewer_frames.evaluation import eval_util, metric_tensors, segment_metrics
from fewer_frames.inputs import readers, record_checks, vocabulary
from fewer_frames.models import model_config, model_graph
from fewer_frames.run_dirs import checkpoints, run_directory
from fewer_frames.system import filesystem
from fewer_frames.system.errors import UserError


class _Progress:
    """Logs videos done, videos/s and (when known) the total, every few seconds."""

    def __init__(self, every_secs, total=None):
        self.every_secs = every_secs
        self.total = total
        self.start = self.last = time.time()
        self.done = 0

    def add(self, count):
        self.done += count
        now = time.time()
        if now - self.last >= self.every_secs:
            self.last = now
            of_total = f" of {self.total}" if self.total else ""
            logging.info("evaluated %d%s videos, %.1f videos/s", self.done, of_total, self.rate())

    def rate(self):
        return self.done / max(time.time() - self.start, 1e-9)


class VideoScores:
    """The video-level metrics of an evaluation: Hit@1, PERR, GAP, mAP (eval_util)."""

    def __init__(self, settings, num_classes):
        self.settings = settings
        self.metrics = eval_util.EvaluationMetrics(num_classes, settings.top_k)

    def fetches(self, outputs, evaluated, batch):
        """The per-video work runs in the graph: a few numbers per video come back."""
        predictions = outputs[f"{evaluated}_predictions"]
        return metric_tensors.video_metric_tensors(
            predictions, outputs["labels"], self.settings.top_k
        )

    def accumulate(self, values):
        self.metrics.accumulate_values(values, values["loss"])
        return len(values["hit_at_one"])

    def summary(self):
        result = self.metrics.get()
        summary = {
            "num_examples": result["num_examples"],
            "hit_at_one": result["avg_hit_at_one"],
            "perr": result["avg_perr"],
            "gap": result["gap"],
            "map": result["map"],
            "map_present_classes": result["map_present_classes"],
            "loss": result["avg_loss"],
        }
        if self.settings.per_class_report:
            names = self.settings.vocabulary
            summary.update(
                per_class_report(
                    result["aps"],
                    self.metrics.map_calculator.num_positives,
                    self.settings.per_class_report,
                    vocabulary.read_vocabulary(names) if names else {},
                )
            )
        return summary


class _SegmentScores:
    """The metrics of an evaluation on rated segments: MAP@K and the segment GAP
    (segment_metrics.py), and the label loss over the rated pairs."""

    def __init__(self, settings, num_classes):
        classes = settings.segment_classes
        whitelist = segment_metrics.read_class_list(classes) if classes else range(num_classes)
        self.metrics = segment_metrics.SegmentMetrics(whitelist, settings.segment_top_k)
        self.loss_sum = 0.0

    def fetches(self, outputs, evaluated, batch):
        return {
            "predictions": outputs[f"{evaluated}_predictions"],
            "labels": outputs["labels"],
            "ids": batch["video_ids"],
            "label_weights": outputs["label_weights"],
        }

    def accumulate(self, values):
        self.metrics.accumulate(
            values["ids"], values["predictions"], values["labels"], values["label_weights"]
        )
        self.loss_sum += float(values["loss"]) * len(values["labels"])
        return len(values["labels"])

    def summary(self):
        result = self.metrics.get()
        result["num_examples"] = result.pop("num_segments")
        result["loss"] = self.loss_sum / max(result["num_examples"], 1)
        return result


def evaluate_checkpoint(config, evaluated, checkpoint_path, settings, total=None):
    """Scores `evaluated` of `config` at `checkpoint_path` on --eval_data_pattern
    (whole videos, or rated segments with --segment_labels)."""
    pattern = settings.eval_data_pattern
    segments = settings.inputs.segments()
    reader = config.reader(segment_size=segments)
    with tf.Graph().as_default():
        bad_records = record_checks.BadRecordCounter()  # this evaluation's
        batch = readers.input_tensors(
            settings.inputs, reader, pattern, num_epochs=1, shuffle=False, bad_records=bad_records
        )
        outputs = model_graph.build_models(
            config, batch, precision=settings.precision, xla=settings.session.xla
        )
        loss_tensors = model_graph.evaluation_losses(outputs, evaluated, settings.label_loss)
        global_step = tf.compat.v1.train.get_or_create_global_step()
        scores = (_SegmentScores if segments else VideoScores)(settings, config.num_classes)
        fetches = {**scores.fetches(outputs, evaluated, batch), **loss_tensors}
        rep_loss_sum = 0.0
        progress = _Progress(settings.progress_every_secs, total)
        with tf.compat.v1.Session(config=settings.session.session_config()) as session:
            checkpoints.restore_models(session, checkpoint_path, config.models)
            # After the restore: local variables include copies of the weights.
            session.run(tf.compat.v1.local_variables_initializer())
            step = int(session.run(global_step))
            for values in readers.run_to_end(session, fetches, reader, pattern):
                count = scores.accumulate(values)
                rep_loss_sum += float(values.get("rep_loss", 0.0)) * count
                progress.add(count)
    summary = scores.summary()
    if not summary["num_examples"]:
        raise UserError(f"--eval_data_pattern={pattern} holds no records")
    summary.update(
        global_step=step,
        model=evaluated,
        checkpoint=checkpoint_path,
        eval_data_pattern=pattern,
        videos_per_second=progress.rate(),
    )
    if "rep_loss" in loss_tensors:
        summary["rep_loss"] = rep_loss_sum / summary["num_examples"]
    if settings.inputs.skip_bad_records:
        summary["skipped_records"] = bad_records.count
    return summary


def per_class_report(aps, positives, count, names):
    """The `count` classes with the best and the worst AP among those with a
    positive: {"best_classes": [...], "worst_classes": [...]}, each entry the
    class, its name (when `names` has it), AP and positives."""
    present = [int(c) for c in np.flatnonzero(np.asarray(positives) > 0)]
    ranked = sorted(present, key=lambda c: (-aps[c], c))

    def entry(c):
        return {
            "class": c,
            "name": names.get(c, ""),
            "ap": float(aps[c]),
            "positives": int(positives[c]),
        }

    return {
        "best_classes": [entry(c) for c in ranked[:count]],
        "worst_classes": [entry(c) for c in reversed(ranked[-count:])],
    }


def format_result(result):
    parts = [
        f"evaluation of {result['model']} at global step {result['global_step']}",
        f"Examples: {result['num_examples']}",
    ]
    if "segment_map" in result:
        parts += [
            f"Segment MAP@{result['segment_top_k']}: {result['segment_map']:.4f} "
            f"({result['classes_scored']} classes)",
            f"Segment GAP: {result['segment_gap']:.4f}",
        ]
    else:
        parts += [
            f"Avg_Hit@1: {result['hit_at_one']:.4f}",
            f"Avg_PERR: {result['perr']:.4f}",
            f"MAP: {result['map']:.4f}",
            f"MAP_present_classes: {result['map_present_classes']:.4f}",
            f"GAP: {result['gap']:.4f}",
        ]
    parts.append(f"Avg_Loss: {result['loss']:.4f}")
    if "rep_loss" in result:
        parts.append(f"L_REP: {result['rep_loss']:.4f}")
    if "skipped_records" in result:
        parts.append(f"Skipped bad records: {result['skipped_records']}")
    for end in ("best", "worst"):
        if f"{end}_classes" in result:
            listed = ", ".join(
                f"{entry['name'] or entry['class']} {entry['ap']:.3f}"
                for entry in result[f"{end}_classes"]
            )
            parts.append(f"{end.capitalize()} classes (AP): {listed}")
    return "| ".join(parts)


def _write_summaries(writer, result):
    tags = (
        "hit_at_one",
        "perr",
        "gap",
        "map",
        "map_present_classes",
        "segment_map",
        "segment_gap",
        "loss",
        "rep_loss",
        "videos_per_second",
    )
    summary = tf.compat.v1.Summary()
    for tag in tags:
        if tag in result:
            summary.value.add(tag=f"eval/{tag}", simple_value=float(result[tag]))
    writer.add_summary(summary, result["global_step"])
    writer.flush()


def _newest_readable(train_dir, unreadable):
    """The latest checkpoint of `train_dir`, or if it is among `unreadable`, the
    newest older one present that is not."""
    latest = checkpoints.latest_checkpoint(train_dir)
    if latest is None or latest not in unreadable:
        return latest
    step = checkpoints.checkpoint_step(latest)
    older = [
        path
        for path in checkpoints.present_checkpoints(train_dir)
        if checkpoints.checkpoint_step(path) < step and path not in unreadable
    ]
    return older[0] if older else None


def run_evaluation(train_dir, requested=None, settings=EvaluationSettings()):
    """Evaluates the run in `train_dir` (once with --run_once, else for each new
    checkpoint), with the model settings `requested` (model_config.RequestedModel)
    where the run has none saved."""
    requested = requested or model_config.RequestedModel()
    config = run_directory.existing_run(requested, train_dir)
    evaluated = requested.scored_model(config, train_dir)
    writer = tf.compat.v1.summary.FileWriter(os.path.join(train_dir, "eval"))
    last_evaluated, total, result = None, None, None
    unreadable = {}  # checkpoint: what is wrong with it
    run_once = settings.run_once or bool(settings.checkpoint_path)
    try:
        while True:
            candidate = settings.checkpoint_path or _newest_readable(train_dir, unreadable)
            if candidate and candidate != last_evaluated:
                try:
                    result = evaluate_checkpoint(config, evaluated, candidate, settings, total)
                except (tf.errors.NotFoundError, UserError) as error:
                    if settings.checkpoint_path:
                        raise
                    if tf.io.gfile.exists(candidate + ".index"):
                        if not isinstance(error, checkpoints.UnreadableCheckpointError):
                            raise
                        # Broken files: the newest older checkpoint that reads whole instead.
                        logging.warning("Skipped checkpoint %s: %s", candidate, error.problem)
                        unreadable[candidate] = error.problem
                        continue
                    # Rotated away between listing and loading: take the next one.
                    logging.warning("checkpoint %s vanished (%s); looking again", candidate, error)
                    continue
                last_evaluated, total = candidate, result["num_examples"]
                logging.info(format_result(result))
                _write_summaries(writer, result)
                if settings.metrics_json:
                    filesystem.write_json(settings.metrics_json, result)
            elif not candidate and run_once:
                if unreadable:
                    problems = "; ".join(f"{path}: {why}" for path, why in unreadable.items())
                    raise UserError(f"no checkpoint in {train_dir} can be read ({problems})")
                raise UserError(f"{train_dir} holds no checkpoint to evaluate")
            if run_once:
                return result
            time.sleep(settings.eval_interval_secs)
    finally:
        writer.close()
