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
import os
import time

from absl import flags, logging

from fewer_frames.config import command_line
from fewer_frames.evaluation import table1, table1_grid
from fewer_frames.system import runtime
from fewer_frames.system.errors import UserError

# The flag topics of each binary a cell runs (see their command_line.define calls).
BINARY_TOPICS = {
    "train.py": (*command_line.RUN_TOPICS, "training"),
    "train_convert_model.py": command_line.RUN_TOPICS,
    "train_finetune.py": (*command_line.RUN_TOPICS, "training"),
    "validate.py": (*command_line.RUN_TOPICS, "evaluation"),
}

command_line.define(*table1_grid.PASSED_TOPICS, "run_directory")
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
    list(table1_grid.PRESETS),
    "Defaults for the flags not given: cpu_sample = small LSTMs, 200 steps (the sample, "
    "2 CPU cores); none = the flags' own defaults (the paper's sizes).",
)
flags.DEFINE_integer("jobs", 1, "Cells run at the same time.")

FLAGS = flags.FLAGS


def passed_flags(preset):
    """Text of the flags every run gets: those given, then the preset's others."""
    given = {
        name: FLAGS[name].serialize()
        for name in command_line.topic_flags(*table1_grid.PASSED_TOPICS)
        if command_line.given(name)
    }
    clashing = sorted(table1_grid.CELL_FLAGS & set(given))
    if clashing:
        raise UserError(f"--{', --'.join(clashing)}: set per cell by the runner; leave them out")
    for name, value in table1_grid.PRESETS[preset].items():
        if name in FLAGS and name not in given and name != "finetune_steps":
            FLAGS[name].value = value
            given[name] = FLAGS[name].serialize()
    return given


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
        else table1_grid.PRESETS[FLAGS.preset].get("finetune_steps", FLAGS.finetune_steps)
    )
    table1_grid._check_grid_file(
        FLAGS.output_dir, {**passed, "finetune_steps": str(finetune_steps)}
    )
    grid = table1_grid.Grid(
        FLAGS.output_dir,
        passed,
        finetune_steps,
        os.path.dirname(os.path.abspath(__file__)),
        {
            binary: set(command_line.topic_flags(*topics))
            for binary, topics in BINARY_TOPICS.items()
        },
    )
    seeds = [FLAGS.first_seed + index for index in range(FLAGS.seeds)]
    cells = table1_grid.grid_cells(rows, ks, seeds)
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
        table1_grid.write_outputs(grid, cells, rows, ks)

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
    table1_grid.write_outputs(grid, cells, rows, ks)
    logging.info("Grid done in %.0f s: %s", time.time() - start, FLAGS.output_dir)


if __name__ == "__main__":
    runtime.run(main, graph_mode=False)
