"""The Table 1 runner through run_table1.sh: a tiny grid, interrupted and continued."""

import glob
import os
import signal
import subprocess
import time

import pytest
import tensorflow as tf

from fewer_frames.evaluation import table1
from testlib import (
    PROJECT_ROOT,
    TINY_RUN,
    launcher_environment,
    made_once,
    read_json,
    read_text,
    run_script,
    shared_root,
)

plugin_data_pb2 = pytest.importorskip("tensorboard.plugins.hparams.plugin_data_pb2")

TINY = [
    # The runner gives each cell its student's chunk count.
    *(flag for flag in TINY_RUN if not flag.startswith("--student_num_inputs_to_lstm")),
    "--max_steps=16",
    "--finetune_steps=6",
]
GRID = ["--rows=serial_rep", "--ks=6", "--seeds=1", *TINY]
# teacher_seed1 (serial_rep learns from it), then serial_rep_k6_seed1.
CELLS = 2
# The paper's rows: training mode and (L_CE, L_rep, L_pred) weights of the student.
ROW_SETTINGS = {
    "teacher": ("teacher_only", None),
    "parallel_rep_ce": ("parallel", (1.0, 1.0, 0.0)),
    "serial_rep": ("serial", (0.0, 1.0, 0.0)),
}
CLASSES = 3862


def _hrnn_flops(k, chunks, units=8, layers=1, width=1152, mixtures=2):
    """Forward FLOPs of the tiny H-RNN over k frames, worked out by hand (2 per multiply-add)."""
    state = 2 * layers * units
    lower = k * 2 * (width + units) * 4 * units
    upper = chunks * 2 * (state + units) * 4 * units
    classifier = 2 * state * CLASSES * (2 * mixtures + 1)
    return lower + upper + classifier


def _hparams_sessions(directory):
    """{trial: (hparams, {metric: value})} read back from the HParams event files."""
    sessions = {}
    for trial_dir in sorted(glob.glob(os.path.join(directory, "*", ""))):
        hparams, metrics = {}, {}
        for path in glob.glob(os.path.join(trial_dir, "events.out.tfevents.*")):
            for event in tf.compat.v1.train.summary_iterator(path):
                for value in event.summary.value:
                    plugin = value.metadata.plugin_data
                    if plugin.plugin_name == "hparams":
                        data = plugin_data_pb2.HParamsPluginData.FromString(plugin.content)
                        start = data.session_start_info
                        hparams = {name: value for name, value in start.hparams.items()}
                    elif value.HasField("tensor"):
                        metrics[value.tag] = float(tf.make_ndarray(value.tensor))
        sessions[os.path.basename(os.path.dirname(trial_dir))] = (hparams, metrics)
    return sessions


def _start_grid(output_dir, env):
    return subprocess.Popen(
        ["bash", os.path.join(PROJECT_ROOT, "run_table1.sh"), f"--output_dir={output_dir}", *GRID],
        cwd=PROJECT_ROOT,
        env=dict(os.environ, **launcher_environment(), **env),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )


def test_tiny_grid_interrupted_and_continued(small_sample, tmp_path):
    sample_dir, _ = small_sample
    env = {"YT8M_DIR": sample_dir}
    output_dir = tmp_path / "table1"

    # Interrupted once the teacher has finished, while its student trains.
    grid = _start_grid(output_dir, env)
    deadline = time.time() + 400
    while len(glob.glob(str(output_dir / "runs" / "*" / "result.json"))) < 1:
        assert grid.poll() is None, grid.stdout.read()
        assert time.time() < deadline, "the grid made no progress"
        time.sleep(0.5)
    grid.send_signal(signal.SIGTERM)
    assert grid.wait(timeout=60) != 0
    finished = {
        path: (os.path.getmtime(path), read_text(path))
        for path in glob.glob(str(output_dir / "runs" / "*" / "result.json"))
    }
    assert 1 <= len(finished) < CELLS

    # The same command continues: finished cells are kept, the others run.
    log = run_script("run_table1.sh", f"--output_dir={output_dir}", *GRID, env=env).stderr
    assert f"{CELLS} cells, {len(finished)} finished before, {CELLS - len(finished)} to run" in log
    assert f"cell {CELLS} of {CELLS} (0 left)" in log and "ETA" in log
    for path, (mtime, text) in finished.items():
        assert (os.path.getmtime(path), read_text(path)) == (mtime, text), path

    results = read_json(output_dir / "results.json")
    cells = sorted((result["row"], result["k"], result["seed"]) for result in results)
    assert cells == [("serial_rep", 6, 1), ("teacher", 60, 1)]  # the teacher: every frame read
    by_cell = {(r["row"], r["seed"]): r for r in results}
    for result in results:
        assert 0 < result["gap"] <= 1 and 0 < result["map"] <= 1, result
        assert 0 <= result["hit_at_one"] <= 1 and 0 <= result["perr"] <= 1
        assert result["wall_seconds"] > 0 and os.path.isdir(result["run_dir"])
        metrics = read_json(
            os.path.join(os.path.dirname(result["run_dir"]), "validate_metrics.json")
        )
        assert result["gap"] == metrics["gap"] and result["steps"] == metrics["global_step"]
        # The cell's seed, mode and loss weights reached its run.
        saved = read_json(os.path.join(result["run_dir"], "train_flags.json"))
        train_saved = read_json(
            os.path.join(os.path.dirname(result["run_dir"]), "train", "train_flags.json")
        )
        assert saved["training"]["random_seed"] == result["seed"]
        mode, weights = ROW_SETTINGS[result["row"]]
        assert train_saved["mode"] == mode
        if weights:
            distillation = train_saved["distillation"]
            assert (
                distillation["ce_loss_weight"],
                distillation["rep_loss_weight"],
                distillation["pred_loss_weight"],
            ) == weights, result["row"]
    # L_rep alone: distilled for 16 steps, then fine-tuned on L_CE for 6.
    assert by_cell["serial_rep", 1]["steps"] == 22 and by_cell["teacher", 1]["steps"] == 16
    assert by_cell["serial_rep", 1]["run_dir"].endswith("finetune")
    # 6 frames: 3 chunks of 2 (the largest divisor of k up to 5), saved with the run.
    student = by_cell["serial_rep", 1]
    config = read_json(os.path.join(student["run_dir"], "model_flags.json"))
    assert config["model_params"]["student_num_inputs_to_lstm"] == 3
    assert config["num_student_frames"] == 6 and config["frame_selection"] == "uniform"
    assert student["flops_per_video"] == _hrnn_flops(k=6, chunks=3)
    assert by_cell["teacher", 1]["flops_per_video"] == _hrnn_flops(k=60, chunks=10)

    table = read_text(output_dir / "table.md")
    for row, paper, key in (("Serial L_rep", "(0.727/0.288)", "serial_rep"),):
        line = next(line for line in table.splitlines() if line.startswith(f"| {row} |"))
        assert f"{by_cell[key, 1]['gap']:.3f} ± 0.000" in line
        assert paper in line
    assert "| Teacher-Skyline" not in table  # not among the rows asked for

    sessions = _hparams_sessions(output_dir / "hparams")
    assert len(sessions) == CELLS
    for result in results:
        name = (
            f"teacher_seed{result['seed']}"
            if result["row"] == "teacher"
            else f"{result['row']}_k{result['k']}_seed{result['seed']}"
        )
        hparams, metrics = sessions[name]
        assert hparams["row"].string_value == result["row"]
        assert hparams["k"].number_value == result["k"]
        assert hparams["seed"].number_value == result["seed"]
        assert metrics["gap"] == pytest.approx(result["gap"], rel=1e-6)
        assert metrics["flops_per_video"] == pytest.approx(result["flops_per_video"], rel=1e-6)


def test_table_gives_each_cell_over_seeds_beside_the_paper():
    results = [
        {"row": "serial_rep", "k": 6, "seed": 1, "gap": 0.70, "map_present_classes": 0.2},
        {"row": "serial_rep", "k": 6, "seed": 2, "gap": 0.72, "map_present_classes": 0.3},
        {"row": "teacher", "k": 300, "seed": 1, "gap": 0.80, "map_present_classes": 0.4},
        {"row": "teacher", "k": 300, "seed": 2, "gap": 0.80, "map_present_classes": 0.5},
    ]
    table = table1.table_markdown(results, ["teacher", "serial_rep"], [6, 10, 7])
    lines = {line.split(" | ")[0]: line for line in table.splitlines() if line.startswith("| ")}
    # Mean ± sample standard deviation: 0.71 ± 0.0141, 0.25 ± 0.0707; the paper's (SPEC
    # Table 1) in brackets, none for k=7.
    assert lines["| Serial L_rep"] == (
        "| Serial L_rep | 0.710 ± 0.014 / 0.250 ± 0.071 (0.727/0.288) | – (0.768/0.339) | – |"
    )
    assert lines["| Teacher-Skyline (all frames)"].startswith(
        "| Teacher-Skyline (all frames) | 0.800 ± 0.000 / 0.450 ± 0.071 ("
    )
    assert "over 2 seed(s) (1, 2)" in table


def test_grid_refuses_flags_it_sets_and_other_flags_in_its_directory(small_sample, tmp_path):
    sample_dir, _ = small_sample
    env = {"YT8M_DIR": sample_dir}
    clash = run_script(
        "run_table1.sh", f"--output_dir={tmp_path}", "--random_seed=3", env=env, check=False
    )
    assert clash.returncode == 1
    assert "--random_seed: set per cell by the runner" in clash.stderr

    (tmp_path / "grid.json").write_text('{"flags": {"lstm_cells": "--lstm_cells=8"}}')
    other = run_script(
        "run_table1.sh", f"--output_dir={tmp_path}", "--lstm_cells=16", env=env, check=False
    )
    assert other.returncode == 1
    assert f"{tmp_path} holds a grid run with other flags" in other.stderr


ONE_CELL = ["--rows=parallel_rep_ce", "--ks=6", *TINY, "--max_steps=4"]


@pytest.fixture(scope="session")
def grid_without_tensorboard(small_sample, tmp_path_factory):
    """(output directory, log) of a one-cell grid run with TensorBoard hidden, made
    once per session."""
    sample_dir, _ = small_sample
    root = shared_root(tmp_path_factory) / "grid_without_tensorboard"
    output_dir = root / "grid"
    with made_once(root) as make:
        if make:
            hidden = root / "no_tensorboard" / "tensorboard"
            hidden.mkdir(parents=True)
            (hidden / "__init__.py").write_text(
                "raise ImportError('tensorboard hidden by the test')\n"
            )
            log = run_script(
                "run_table1.sh",
                f"--output_dir={output_dir}",
                *ONE_CELL,
                env={"YT8M_DIR": sample_dir, "PYTHONPATH": str(hidden.parent)},
            ).stderr
            (root / "log.txt").write_text(log)
    return output_dir, read_text(root / "log.txt")


def test_grid_without_tensorboard_writes_results_and_says_how_to_get_hparams(
    grid_without_tensorboard,
):
    output_dir, log = grid_without_tensorboard
    assert "TensorBoard is not installed" in log
    assert "pip install -r requirements-tensorboard.txt" in log
    (result,) = read_json(output_dir / "results.json")
    assert result["row"] == "parallel_rep_ce" and result["steps"] == 4
    assert (output_dir / "table.md").exists() and not (output_dir / "hparams").exists()
    # The row's mode and loss weights reached its run.
    saved = read_json(os.path.join(result["run_dir"], "train_flags.json"))
    mode, weights = ROW_SETTINGS["parallel_rep_ce"]
    assert saved["mode"] == mode
    distillation = saved["distillation"]
    assert (
        distillation["ce_loss_weight"],
        distillation["rep_loss_weight"],
        distillation["pred_loss_weight"],
    ) == weights


def test_grid_on_a_file_uri_equals_the_grid_on_a_local_path(
    small_sample, grid_without_tensorboard, tmp_path
):
    sample_dir, _ = small_sample
    local_dir, _ = grid_without_tensorboard
    run_script(
        "run_table1.sh",
        f"--output_dir=file://{tmp_path}/grid",
        *ONE_CELL,
        env={
            "YT8M_DIR": sample_dir,
            "TRAIN_DATA": f"file://{sample_dir}/train*.tfrecord",
            "EVAL_DATA": f"file://{sample_dir}/validate*.tfrecord",
        },
    )
    output_dir = tmp_path / "grid"
    where = {"wall_seconds", "run_dir"}
    (result,) = read_json(output_dir / "results.json")
    (local,) = read_json(local_dir / "results.json")
    assert {key: value for key, value in result.items() if key not in where} == {
        key: value for key, value in local.items() if key not in where
    }
    assert result["run_dir"] == f"file://{output_dir}/runs/parallel_rep_ce_k6_seed1/train"
    assert read_text(output_dir / "table.md") == read_text(local_dir / "table.md")
    # Each run's log reached the cell's directory; the HParams summaries were written.
    for name in ("train.log", "validate.log"):
        cell_dir = output_dir / "runs" / "parallel_rep_ce_k6_seed1"
        assert "--train_dir=file://" in read_text(cell_dir / name)
    assert set(_hparams_sessions(output_dir / "hparams")) == {"parallel_rep_ce_k6_seed1"}
    assert not os.path.exists(os.path.join(PROJECT_ROOT, "file:"))
