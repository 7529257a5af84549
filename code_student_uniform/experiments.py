"""The paper's Table 1 in one command: a grid of (row, k, seed) cells.

Every cell trains through train.py and is scored on the validation data
through validate.py, each a process of its own, in a run directory under
--output_dir/runs/. A cell with a result.json is finished and never rerun, so
an interrupted grid continues where it stopped (a cell cut off mid-training
resumes from its last checkpoint). After each cell the runner rewrites, in
--output_dir: results.json (every finished cell of the grid), table.md (the
paper's layout, mean +- std over the seeds, the paper's numbers beside them)
and, when TensorBoard is installed, HParams summaries in hparams/.

Rows (the paper's names in ROWS): the teacher alone (Teacher-Skyline, all
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
import dataclasses
import os
import shutil
import statistics
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
from runtime import UserError


@dataclasses.dataclass(frozen=True)
class Row:
    label: str  # the paper's name
    mode: str  # train.py --training_mode
    frame_selection: str = "uniform"
    # (ce, rep, pred) loss weights of the student's distillation loss
    weights: tuple = (1.0, 1.0, 1.0)

    @property
    def needs_finetune(self):
        """Only L_rep: the student's classifier learns nothing before fine-tuning."""
        ce, _, pred = self.weights
        return self.mode in ("parallel", "serial") and ce == 0 and pred == 0


ROWS = {
    "teacher": Row("Teacher-Skyline", "teacher_only"),
    "uniform": Row("Uniform-k", "student_only"),
    "random": Row("Random-k", "student_only", "random"),
    "first": Row("First-k", "student_only", "first"),
    "middle": Row("Middle-k", "student_only", "middle"),
    "last": Row("Last-k", "student_only", "last"),
    "first_middle_last": Row("First-Middle-Last-k", "student_only", "first_middle_last"),
    "parallel_rep": Row("Parallel L_rep", "parallel", weights=(0.0, 1.0, 0.0)),
    "parallel_rep_ce": Row("Parallel L_rep+L_CE", "parallel", weights=(1.0, 1.0, 0.0)),
    "parallel_rep_pred_ce": Row("Parallel L_rep+L_pred+L_CE", "parallel"),
    "serial_rep": Row("Serial L_rep", "serial", weights=(0.0, 1.0, 0.0)),
    "serial_pred": Row("Serial L_pred", "serial", weights=(0.0, 0.0, 1.0)),
    "serial_rep_ce": Row("Serial L_rep+L_CE", "serial", weights=(1.0, 1.0, 0.0)),
    "serial_pred_ce": Row("Serial L_pred+L_CE", "serial", weights=(1.0, 0.0, 1.0)),
    "serial_rep_pred_ce": Row("Serial L_rep+L_pred+L_CE", "serial"),
}
PAPER_KS = (6, 10, 15, 20, 30)
# The paper's Table 1 (H-RNN on YouTube-8M): GAP, mAP per k in PAPER_KS.
PAPER = {
    "teacher": (0.811, 0.414),
    "uniform": ((0.715, 0.266), (0.759, 0.324), (0.777, 0.350), (0.785, 0.363), (0.795, 0.378)),
    "random": ((0.679, 0.246), (0.681, 0.254), (0.717, 0.268), (0.763, 0.329), (0.774, 0.339)),
    "first": ((0.478, 0.133), (0.539, 0.163), (0.595, 0.199), (0.632, 0.223), (0.676, 0.258)),
    "middle": ((0.577, 0.178), (0.600, 0.198), (0.620, 0.214), (0.638, 0.229), (0.665, 0.250)),
    "last": ((0.255, 0.062), (0.267, 0.067), (0.282, 0.077), (0.294, 0.083), (0.317, 0.094)),
    "first_middle_last": (
        (0.640, 0.215),
        (0.671, 0.242),
        (0.680, 0.249),
        (0.698, 0.268),
        (0.721, 0.287),
    ),
    "parallel_rep": (
        (0.724, 0.280),
        (0.762, 0.331),
        (0.785, 0.365),
        (0.794, 0.380),
        (0.803, 0.392),
    ),
    "parallel_rep_ce": (
        (0.726, 0.285),
        (0.766, 0.334),
        (0.785, 0.362),
        (0.795, 0.381),
        (0.804, 0.396),
    ),
    "parallel_rep_pred_ce": (
        (0.729, 0.292),
        (0.770, 0.337),
        (0.789, 0.371),
        (0.796, 0.388),
        (0.806, 0.404),
    ),
    "serial_rep": ((0.727, 0.288), (0.768, 0.339), (0.786, 0.365), (0.795, 0.381), (0.802, 0.394)),
    "serial_pred": ((0.722, 0.287), (0.766, 0.341), (0.784, 0.367), (0.793, 0.383), (0.798, 0.390)),
    "serial_rep_ce": (
        (0.728, 0.291),
        (0.769, 0.341),
        (0.786, 0.368),
        (0.794, 0.383),
        (0.803, 0.399),
    ),
    "serial_pred_ce": (
        (0.724, 0.289),
        (0.763, 0.341),
        (0.785, 0.369),
        (0.795, 0.386),
        (0.799, 0.391),
    ),
    "serial_rep_pred_ce": (
        (0.731, 0.297),
        (0.771, 0.349),
        (0.789, 0.375),
        (0.798, 0.390),
        (0.806, 0.405),
    ),
}
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
METRICS = ("gap", "map", "map_present_classes", "hit_at_one", "perr")

command_line.define(*PASSED_TOPICS, "run_directory")
flags.DEFINE_string("output_dir", "runs/table1", "Where the grid's runs and results go.")
flags.DEFINE_list("rows", list(ROWS), f"Table rows to run, of: {', '.join(ROWS)}.")
flags.DEFINE_list("ks", [str(k) for k in PAPER_KS], "Student frame counts k.")
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


@dataclasses.dataclass(frozen=True)
class Cell:
    row: str
    k: int  # 0 for the teacher, which sees every frame
    seed: int

    @property
    def name(self):
        return (
            f"teacher_seed{self.seed}"
            if self.row == "teacher"
            else (f"{self.row}_k{self.k}_seed{self.seed}")
        )


def grid_cells(rows, ks, seeds):
    """Teachers first: the serial rows learn from their seed's teacher."""
    cells = [Cell("teacher", 0, seed) for seed in seeds if "teacher" in rows or _has_serial(rows)]
    cells += [Cell(row, k, seed) for row in rows if row != "teacher" for k in ks for seed in seeds]
    return cells


def _has_serial(rows):
    return any(ROWS[row].mode == "serial" for row in rows)


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
        row = ROWS[cell.row]
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
            teacher = Cell("teacher", 0, cell.seed)
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
            "k": cell.k if is_student else config.max_frames,
            "seed": cell.seed,
            **{name: metrics[name] for name in METRICS},
            "flops_per_video": flops.flops_per_video(config, student=is_student),
            "model": config.model,
            "steps": metrics["global_step"],
            "wall_seconds": round(time.time() - start, 1),
            "run_dir": scored_dir,
        }
        runtime.write_json(os.path.join(directory, CELL_RESULT), result)
        return result


def _mean_std(values):
    if not values:
        return ""
    spread = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.mean(values):.3f} ± {spread:.3f}"


def _paper_cell(row, k):
    if row == "teacher":
        return PAPER["teacher"]
    return PAPER[row][PAPER_KS.index(k)] if k in PAPER_KS else None


def table_markdown(results, rows, ks):
    """The paper's layout: GAP / mAP per row and k, mean ± std over seeds."""
    seeds = sorted({result["seed"] for result in results})
    lines = [
        "# Table 1, measured",
        "",
        f"GAP / mAP on the validation data, mean ± std over {len(seeds)} seed(s) "
        f"({', '.join(map(str, seeds))}); the paper's GAP/mAP in brackets. mAP here is "
        "over the classes present in the validation data (map_present_classes).",
        "",
        "| row | " + " | ".join(f"k={k}" for k in ks) + " |",
        "|---|" + "---|" * len(ks),
    ]
    for row in rows:
        columns = [None] if row == "teacher" else ks
        cells = []
        for k in columns:
            chosen = [
                result
                for result in results
                if result["row"] == row and (row == "teacher" or result["k"] == k)
            ]
            measured = " / ".join(
                _mean_std([result[name] for result in chosen])
                for name in ("gap", "map_present_classes")
            )
            paper = _paper_cell(row, k)
            reference = f" ({paper[0]:.3f}/{paper[1]:.3f})" if paper else ""
            cells.append(f"{measured}{reference}" if chosen else f"–{reference}")
        label = ROWS[row].label + (" (all frames)" if row == "teacher" else "")
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def write_hparams(directory, results, rows, ks):
    """HParams summaries: one session per cell, the grid's config at the top."""
    try:
        from tensorboard.plugins.hparams import api as hp
    except ImportError:
        logging.warning(
            "TensorBoard is not installed: no HParams summaries. Install it with "
            "`.venv/bin/pip install -r requirements-tensorboard.txt` and run the same "
            "command again (finished cells are not retrained)."
        )
        return
    frame_counts = sorted({int(k) for k in ks} | {result["k"] for result in results})
    params = {
        "row": hp.HParam("row", hp.Discrete(rows)),
        "k": hp.HParam("k", hp.Discrete(frame_counts)),
        "seed": hp.HParam("seed", hp.Discrete(sorted({r["seed"] for r in results}) or [0])),
        "model": hp.HParam("model", hp.Discrete(sorted({r["model"] for r in results}) or [""])),
    }
    with runtime.atomic_output(directory) as staging:
        tf.io.gfile.makedirs(staging)
        with tf.summary.create_file_writer(staging).as_default():
            hp.hparams_config(
                hparams=list(params.values()),
                metrics=[hp.Metric(name) for name in (*METRICS, "flops_per_video")],
            )
        for result in results:
            name = Cell(result["row"], result["k"], result["seed"]).name
            with tf.summary.create_file_writer(os.path.join(staging, name)).as_default():
                hp.hparams({params[key]: result[key] for key in params}, trial_id=name)
                for metric in (*METRICS, "flops_per_video"):
                    tf.summary.scalar(metric, result[metric], step=result["steps"])


def write_outputs(grid, cells, rows, ks):
    results = [result for result in map(grid.result, cells) if result]
    runtime.write_json(os.path.join(grid.output_dir, "results.json"), results)
    runtime.write_atomically(
        os.path.join(grid.output_dir, "table.md"), table_markdown(results, rows, ks)
    )
    write_hparams(os.path.join(grid.output_dir, "hparams"), results, rows, ks)


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
    unknown = sorted(set(FLAGS.rows) - set(ROWS))
    if unknown:
        raise UserError(f"--rows: unknown {unknown}; known: {', '.join(ROWS)}")
    ks = [int(k) for k in FLAGS.ks]
    if any(k <= 0 for k in ks):
        raise UserError(f"--ks must be positive frame counts, not {FLAGS.ks}")
    rows = [row for row in ROWS if row in FLAGS.rows]
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
