"""The Table 1 runner's grid (experiments.py describes it): its cells, each trained
and scored through the binaries in a process of its own, resumable; the results
and the table written after each cell."""

import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time

import tensorflow as tf

from fewer_frames.evaluation import table1
from fewer_frames.models import flops
from fewer_frames.run_dirs import checkpoints, run_files
from fewer_frames.system import filesystem
from fewer_frames.system.errors import UserError

# Small LSTMs and a few hundred steps: the whole grid, one seed, on 2 CPU cores.
PRESETS = {
    "none": {},
    "cpu_sample": {
        "lstm_cells": 32,
        "lstm_layers": 1,
        "batch_size": 16,
        "num_readers": 2,
        "num_epochs": 0,
        "max_steps": 200,
        "base_learning_rate": 0.003,
        "log_every_steps": 100,
        "finetune_steps": 100,
    },
}
# Set per cell by the runner; giving them here would be ambiguous.
CELL_FLAGS = {
    "train_dir",
    "overwrite",
    "start_new_model",
    "random_seed",
    "frame_selection",
    "num_student_frames",
    "student_num_inputs_to_lstm",
    "ce_loss_weight",
    "rep_loss_weight",
    "pred_loss_weight",
    "run_once",
    "metrics_json",
    "eval_interval_secs",
    "eval_model",
}
PASSED_TOPICS = (
    "runtime",
    "graph_optimizer",
    "data",
    "input",
    "model",
    "distillation",
    "training",
    "evaluation",
)
CELL_RESULT = "result.json"
GRID_FILE = "grid.json"


def student_chunk_count(frames, most=5):
    """The largest divisor of `frames` that is at most `most`."""
    return max(count for count in range(1, most + 1) if frames % count == 0)


def grid_cells(rows, ks, seeds):
    """Teachers first: the serial rows learn from their seed's teacher."""
    cells = [
        table1.Cell("teacher", 0, seed) for seed in seeds if "teacher" in rows or _has_serial(rows)
    ]
    cells += [
        table1.Cell(row, k, seed) for row in rows if row != "teacher" for k in ks for seed in seeds
    ]
    return cells


def _has_serial(rows):
    return any(table1.ROWS[row].mode == "serial" for row in rows)


@contextlib.contextmanager
def local_log(path):
    """A local file for a child's log that belongs at `path`: `path` itself on the
    local disk; for an --output_dir elsewhere (gs://, ...), a local temporary file
    copied to `path` when the child ends (a process writes its output to a local
    file only)."""
    if filesystem.is_local(path):
        yield filesystem.local_path(path)
        return
    folder = tempfile.mkdtemp(prefix="table1_log.")
    local = os.path.join(folder, os.path.basename(path))
    try:
        yield local
    finally:
        if os.path.exists(local):
            tf.io.gfile.copy(local, path, overwrite=True)
        shutil.rmtree(folder, ignore_errors=True)


class Grid:
    """Runs cells, each through the binaries, and writes the grid's outputs."""

    def __init__(self, output_dir, passed, finetune_steps, binary_dir, accepted_flags):
        self.output_dir = output_dir
        self.passed = passed  # flag name: command-line text, for every run
        self.finetune_steps = finetune_steps
        self.binary_dir = binary_dir  # where train.py and the other binaries are
        self.accepted_flags = accepted_flags  # binary: the names of the flags it takes
        self.processes = set()
        self.stopped = False
        self.lock = threading.Lock()

    def cell_dir(self, cell):
        return os.path.join(self.output_dir, "runs", cell.name)

    def result(self, cell):
        path = os.path.join(self.cell_dir(cell), CELL_RESULT)
        return filesystem.read_json(path) if tf.io.gfile.exists(path) else None

    def _run(self, cell, binary, log_name, **cell_flags):
        accepted = self.accepted_flags[binary]
        flags_text = [text for name, text in self.passed.items() if name in accepted]
        flags_text += [f"--{name}={value}" for name, value in cell_flags.items()]
        command = [sys.executable, os.path.join(self.binary_dir, binary), *flags_text]
        log_path = os.path.join(self.cell_dir(cell), log_name)
        with local_log(log_path) as local_path, open(local_path, "w") as log:
            log.write(" ".join(command) + "\n")
            log.flush()
            with self.lock:
                if self.stopped:
                    raise UserError(f"cell {cell.name}: the grid was stopped")
                process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
                self.processes.add(process)
            try:
                code = process.wait()
            finally:
                with self.lock:
                    self.processes.discard(process)
        if code:
            with tf.io.gfile.GFile(log_path) as log:
                tail = "".join(log.readlines()[-8:])
            raise UserError(
                f"cell {cell.name}: {binary} exited with {code}; its log is {log_path}:\n{tail}"
            )

    def stop(self, grace_seconds=300):
        """Asks every running child to stop (SIGTERM: a training run saves a
        checkpoint first) and waits for them; kills those still running after
        `grace_seconds`."""
        with self.lock:
            self.stopped = True
            running = list(self.processes)
        for process in running:
            process.terminate()
        deadline = time.time() + grace_seconds
        for process in running:
            try:
                process.wait(max(deadline - time.time(), 0))
            except subprocess.TimeoutExpired:
                process.kill()

    def run_cell(self, cell):
        """Trains and scores one cell; returns its result (also in result.json)."""
        row = table1.ROWS[cell.row]
        directory = self.cell_dir(cell)
        tf.io.gfile.makedirs(directory)
        start = time.time()
        train_dir = os.path.join(directory, "train")
        model_flags = {"random_seed": cell.seed}
        if row.mode != "teacher_only":
            model_flags.update(
                frame_selection=row.frame_selection,
                num_student_frames=cell.k,
                student_num_inputs_to_lstm=student_chunk_count(cell.k),
            )
        ce, rep, pred = row.weights
        weights = dict(ce_loss_weight=ce, rep_loss_weight=rep, pred_loss_weight=pred)
        if row.mode == "serial":
            teacher = table1.Cell("teacher", 0, cell.seed)
            extra = dict(teacher_dir=os.path.join(self.cell_dir(teacher), "train"), **weights)
        elif row.mode == "parallel":
            extra = weights
        else:
            extra = {}
        self._run(
            cell,
            "train.py",
            "train.log",
            train_dir=train_dir,
            training_mode=row.mode,
            **model_flags,
            **extra,
        )
        scored_dir = train_dir
        if row.needs_finetune:
            scored_dir = os.path.join(directory, "finetune")
            if not checkpoints.latest_checkpoint(scored_dir):
                self._run(
                    cell,
                    "train_convert_model.py",
                    "convert.log",
                    train_dir=train_dir,
                    finetune_dir=scored_dir,
                    overwrite=True,
                )
            finetune_flags = dict(model_flags, train_dir=scored_dir)
            if self.finetune_steps:
                finetune_flags["max_steps"] = (
                    checkpoints.checkpoint_step(checkpoints.latest_checkpoint(train_dir))
                    + self.finetune_steps
                )
            self._run(cell, "train_finetune.py", "finetune.log", **finetune_flags)
        metrics_path = os.path.join(directory, run_files.VALIDATE_METRICS_FILE)
        self._run(
            cell,
            "validate.py",
            "validate.log",
            train_dir=scored_dir,
            eval_model="teacher" if row.mode == "teacher_only" else "student",
            run_once=True,
            metrics_json=metrics_path,
        )
        metrics = filesystem.read_json(metrics_path)
        config = run_files.read_model_config(os.path.join(scored_dir, run_files.MODEL_FLAGS_FILE))
        is_student = row.mode != "teacher_only"
        result = {
            "row": cell.row,
            "k": cell.k if is_student else config.max_num_frames,
            "seed": cell.seed,
            **{name: metrics[name] for name in table1.METRICS},
            "flops_per_video": flops.flops_per_video(config, student=is_student),
            "model": config.model,
            "steps": metrics["global_step"],
            "wall_seconds": round(time.time() - start, 1),
            "run_dir": scored_dir,
        }
        filesystem.write_json(os.path.join(directory, CELL_RESULT), result)
        return result


def write_outputs(grid, cells, rows, ks):
    results = [result for result in map(grid.result, cells) if result]
    filesystem.write_json(os.path.join(grid.output_dir, "results.json"), results)
    filesystem.write_atomically(
        os.path.join(grid.output_dir, "table.md"), table1.table_markdown(results, rows, ks)
    )
    table1.write_hparams(os.path.join(grid.output_dir, "hparams"), results, rows, ks)


def _check_grid_file(output_dir, passed):
    """A grid directory holds runs of one set of flags; rows, ks and seeds may grow."""
    path = os.path.join(output_dir, GRID_FILE)
    if tf.io.gfile.exists(path):
        saved = filesystem.read_json(path)["flags"]
        if saved != passed:
            changed = sorted(set(saved.items()) ^ set(passed.items()))
            raise UserError(
                f"{output_dir} holds a grid run with other flags ({changed}); give another "
                "--output_dir, or the same flags to continue it"
            )
    else:
        filesystem.write_json(path, {"flags": passed})
