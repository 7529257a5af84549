"""The paper's Table 1: its rows, its numbers, a grid cell, and the rendering of
measured results (table.md in the paper's layout, HParams summaries).

experiments.py runs the grid; this module knows nothing of flags or processes.
"""

import dataclasses
import os
import statistics

import tensorflow as tf
from absl import logging

from fewer_frames.system import filesystem

METRICS = ("gap", "map", "map_present_classes", "hit_at_one", "perr")


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
    with filesystem.atomic_output(directory) as staging:
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
