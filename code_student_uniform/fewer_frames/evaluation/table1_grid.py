"""The paper's Table 1 in one command: a grid of (row, k, seed) cells.

Every cell trains through train.py and is scored on the validation data
through validate.py, each a process of its own, in a run directory under
--output_dir/runs/. A cell with a result.json is finished and never rerun, so
an interrupted grid continues where it stopped (a cell cut off mid-training
resumes from its last checkpoint). After each cell the runner rewrites, in
--output_dir: results.json (every finished cell of the grid), table.md (the
paper's layout, mean +- std over the seeds, the paper's numbers beside them)
and, when TensorBoard is installed, HParams summaries in hparams/.

Rows (the paper's names in table1.py's ROWS): the teacher alone (Teacher-Skyline, all
frames, one per seed); students alone under the six frame-selection rules;
the student learning in parallel with its teacher; the student learning from
the seed's one trained teacher (serial). Model, data, input, distillation and
training flags given here are passed to every run; the runner sets each
cell's mode, seed, frame rule, frame count, student chunk count and loss
weights itself.

Student chunk count for k frames: the largest divisor of k that is at most 5
(the original student's 5 chunks): 3 for k = 6, 5 for 10, 15, 20 and 30. It is
saved with the run (--student_num_inputs_to_lstm in model_flags.json).

A student trained on L_rep alone gets no gradient into its classifier; as in
the original pipeline's stages 3 and 4, those cells (parallel_rep,
serial_rep) are then cut out of the teacher-student checkpoint and fine-tuned
on L_CE for --finetune_steps steps, and the fine-tuned student is scored.
"""

import concurrent.futures
import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time

import tensorflow as tf
from absl import flags, logging

import checkpoints
import command_line
import flops
import run_config
import runtime
import table1
from runtime import UserError

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
# The flag topics each binary takes (see their command_line.define calls).
BINARY_TOPICS = {
    "train.py": (*command_line.RUN_TOPICS, "training"),
    "train_convert_model.py": command_line.RUN_TOPICS,
    "train_finetune.py": (*command_line.RUN_TOPICS, "training"),
    "validate.py": (*command_line.RUN_TOPICS, "evaluation"),
}
PASSED_TOPICS = ("runtime", "data", "input", "model", "distillation", "training", "evaluation")
CELL_RESULT = "result.json"
GRID_FILE = "grid.json"

command_line.define(*PASSED_TOPICS, "run_directory")
flags.DEFINE_string("output_dir", "runs/table1", "Where the grid's runs and results go.")
flags.DEFINE_list("rows", list(table1.ROWS), f"Table rows to run, of: {', '.join(table1.ROWS)}.")
flags.DEFINE_list("ks", [str(k) for k in table1.PAPER_KS], "Student frame counts k.")
flags.DEFINE_integer(
    "seeds", 1, "Seeds per cell (--random_seed = first_seed, first_seed + 1, ...)."
)
flags.DEFINE_integer("first_seed", 1, "The first seed.")
flags.DEFINE_integer(
    "finetune_steps",
    0,
    "L_CE steps after distillation for the L_rep-only rows (0: --num_epochs of the data).",
)
flags.DEFINE_enum(
    "preset",
    "none",
    list(PRESETS),
    "Defaults for the flags not given: cpu_sample = small LSTMs, 200 steps (the sample, "
    "2 CPU cores); none = the flags' own defaults (the paper's sizes).",
)
flags.DEFINE_integer("jobs", 1, "Cells run at the same time.")

FLAGS = flags.FLAGS
BINARY_DIR = os.path.dirname(os.path.abspath(__file__))


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
    if runtime.is_local(path):
        yield runtime.local_path(path)
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

    def __init__(self, output_dir, passed, finetune_steps):
        self.output_dir = output_dir
        self.passed = passed  # flag name: command-line text, for every run
        self.finetune_steps = finetune_steps
        self.processes = set()
        self.stopped = False
        self.lock = threading.Lock()

    def cell_dir(self, cell):
        return os.path.join(self.output_dir, "runs", cell.name)

    def result(self, cell):
        path = os.path.join(self.cell_dir(cell), CELL_RESULT)
        return runtime.read_json(path) if tf.io.gfile.exists(path) else None

    def _run(self, cell, binary, log_name, **cell_flags):
        accepted = set(command_line.topic_flags(*BINARY_TOPICS[binary]))
        flags_text = [text for name, text in self.passed.items() if name in accepted]
        flags_text += [f"--{name}={value}" for name, value in cell_flags.items()]
        command = [sys.executable, os.path.join(BINARY_DIR, binary), *flags_text]
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
        metrics_path = os.path.join(directory, "validate_metrics.json")
        self._run(
            cell,
            "validate.py",
            "validate.log",
            train_dir=scored_dir,
            eval_model="teacher" if row.mode == "teacher_only" else "student",
            run_once=True,
            metrics_json=metrics_path,
        )
        metrics = runtime.read_json(metrics_path)
        config = run_config.ModelConfig.read(os.path.join(scored_dir, run_config.MODEL_FLAGS_FILE))
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
        runtime.write_json(os.path.join(directory, CELL_RESULT), result)
        return result


def write_outputs(grid, cells, rows, ks):
    results = [result for result in map(grid.result, cells) if result]
    runtime.write_json(os.path.join(grid.output_dir, "results.json"), results)
    runtime.write_atomically(
        os.path.join(grid.output_dir, "table.md"), table1.table_markdown(results, rows, ks)
    )
    table1.write_hparams(os.path.join(grid.output_dir, "hparams"), results, rows, ks)


def passed_flags(preset):
    """Text of the flags every run gets: those given, then the preset's others."""
    given = {
        name: FLAGS[name].serialize()
        for name in command_line.topic_flags(*PASSED_TOPICS)
        if command_line.given(name)
    }
    clashing = sorted(CELL_FLAGS & set(given))
    if clashing:
        raise UserError(f"--{', --'.join(clashing)}: set per cell by the runner; leave them out")
    for name, value in PRESETS[preset].items():
        if name in FLAGS and name not in given and name != "finetune_steps":
            FLAGS[name].value = value
            given[name] = FLAGS[name].serialize()
    return given


def _check_grid_file(output_dir, passed):
    """A grid directory holds runs of one set of flags; rows, ks and seeds may grow."""
    path = os.path.join(output_dir, GRID_FILE)
    if tf.io.gfile.exists(path):
        saved = runtime.read_json(path)["flags"]
        if saved != passed:
            changed = sorted(set(saved.items()) ^ set(passed.items()))
            raise UserError(
                f"{output_dir} holds a grid run with other flags ({changed}); give another "
                "--output_dir, or the same flags to continue it"
            )
    else:
        runtime.write_json(path, {"flags": passed})


def main(argv):
    del argv
    unknown = sorted(set(FLAGS.rows) - set(table1.ROWS))
    if unknown:
        raise UserError(f"--rows: unknown {unknown}; known: {', '.join(table1.ROWS)}")
    ks = [int(k) for k in FLAGS.ks]
    if any(k <= 0 for k in ks):
        raise UserError(f"--ks must be positive frame counts, not {FLAGS.ks}")
    rows = [row for row in table1.ROWS if row in FLAGS.rows]
    passed = passed_flags(FLAGS.preset)
    finetune_steps = (
        FLAGS.finetune_steps
        if command_line.given("finetune_steps")
        else PRESETS[FLAGS.preset].get("finetune_steps", FLAGS.finetune_steps)
    )
    _check_grid_file(FLAGS.output_dir, {**passed, "finetune_steps": str(finetune_steps)})
    grid = Grid(FLAGS.output_dir, passed, finetune_steps)
    seeds = [FLAGS.first_seed + index for index in range(FLAGS.seeds)]
    cells = grid_cells(rows, ks, seeds)
    todo = [cell for cell in cells if grid.result(cell) is None]
    logging.info(
        "%d cells, %d finished before, %d to run (%d at a time)",
        len(cells),
        len(cells) - len(todo),
        len(todo),
        FLAGS.jobs,
    )
    start, done = time.time(), len(cells) - len(todo)

    def finished(result, cell):
        nonlocal done
        done += 1
        elapsed = time.time() - start
        ran = done - (len(cells) - len(todo))
        eta = elapsed / ran * (len(cells) - done)
        logging.info(
            "cell %d of %d (%d left): %s GAP %.4f mAP %.4f (%.0f s); ETA %s",
            done,
            len(cells),
            len(cells) - done,
            cell.name,
            result["gap"],
            result["map"],
            result["wall_seconds"],
            time.strftime("%H:%M:%S", time.gmtime(eta)),
        )
        write_outputs(grid, cells, rows, ks)

    pool = concurrent.futures.ThreadPoolExecutor(max(FLAGS.jobs, 1))
    try:
        # Teachers first, then every other cell (the serial ones read a teacher).
        for phase in (
            [cell for cell in todo if cell.row == "teacher"],
            [cell for cell in todo if cell.row != "teacher"],
        ):
            futures = {pool.submit(grid.run_cell, cell): cell for cell in phase}
            for future in concurrent.futures.as_completed(futures):
                finished(future.result(), futures[future])
    except BaseException:
        # No process outlives the runner: on SIGTERM or Ctrl-C the running cells
        # save and stop; finished cells stay finished, and the same command goes on.
        grid.stop()
        raise
    finally:
        pool.shutdown(cancel_futures=True)
    write_outputs(grid, cells, rows, ks)
    logging.info("Grid done in %.0f s: %s", time.time() - start, FLAGS.output_dir)


if __name__ == "__main__":
    runtime.run(main, graph_mode=False)
