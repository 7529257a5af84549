"""benchmark.py --what=scale: what the full 2018 frame-level dataset costs at
start-up, per evaluation and per inference pass, measured at small fractions of
it and extrapolated.

For each fraction in --scale_fractions, a dataset of that fraction of the
training and validation sets (videos and files) is generated with records of
the real size, and three stages run through their binaries, each in a process
of its own: the chief's start-up (train.py up to and through its first step,
--num_epochs=1), one evaluation pass (validate.py --run_once) and one inference
pass (inference.py), on the validation set (--scale_stages: which of them;
the passes need the start-up's run). Each child reports its bytes read and
read calls (/proc/self/io, from the start of its main: its imports left out)
and its peak memory (VmHWM); the parent times it. A straight line through the
fractions' figures, per stage and figure, extrapolates them to the full
dataset, and a storage model (read calls x latency + bytes / bandwidth) gives
the time the reads would take from a bucket.
"""

import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np
import tensorflow as tf
from absl import logging

from fewer_frames.config.settings import EvaluationSettings
from fewer_frames.inputs import sample_data, yt8m_format
from fewer_frames.system.errors import UserError
from fewer_frames.training import progress

# The 2018 frame-level release: videos and files per split (the YouTube-8M site).
FULL_DATASET = {
    "train": {"videos": 3_888_919, "files": 3_844},
    "validate": {"videos": 1_112_356, "files": 3_844},
}
# 1.53 TB of frame-level records for 6.13 million videos: 249 KB per record, or
# 214 frames of 1,024 + 128 bytes and their framing. Frames per video are drawn
# uniformly from --scale_frames (128 to 300: mean 214, the cap at 300 seconds).
REAL_RECORD_BYTES = 1.53e12 / 6_134_598
LABELS_PER_VIDEO = 3
TEMPLATE_RECORDS = 64  # distinct records per split, written round-robin

# Run in the child in place of `python <binary> <flags>`: the reads counted from
# the moment absl's app.run starts (every module imported), to the exit.
_MEASURED = """
import atexit, json, os, runpy, sys
from absl import app
def _reads():
    io = dict(line.split(": ") for line in open("/proc/self/io").read().splitlines())
    return int(io["rchar"]), int(io["syscr"])
def _report():
    status = dict(line.split(":", 1) for line in open("/proc/self/status").read().splitlines())
    (bytes_read, calls), (bytes_before, calls_before) = _reads(), started
    with open(report, "w") as stream:
        json.dump({"bytes_read": bytes_read - bytes_before, "read_calls": calls - calls_before,
                   "peak_bytes": int(status["VmHWM"].split()[0]) * 1024}, stream)
started = (0, 0)
_run = app.run
def _counted_run(*args, **kwargs):
    global started
    started = _reads()
    return _run(*args, **kwargs)
app.run = _counted_run
atexit.register(_report)
report, binary = sys.argv[1], sys.argv[2]
sys.argv = sys.argv[2:]
sys.path.insert(0, os.path.dirname(os.path.abspath(binary)))  # as `python binary` does
runpy.run_path(binary, run_name="__main__")
"""


def _template_records(split, frames_range, num_classes, seed):
    rng = np.random.default_rng([seed, len(split)])
    id_feature, _ = yt8m_format.dataset_version_info("2018")
    records = []
    for index in range(TEMPLATE_RECORDS):
        frames = int(rng.integers(frames_range[0], frames_range[1] + 1))
        rgb = rng.integers(0, 256, (frames, 1024), dtype=np.uint8)
        audio = rng.integers(0, 256, (frames, 128), dtype=np.uint8)
        labels = sorted(rng.choice(num_classes, LABELS_PER_VIDEO, replace=False))
        video_id = f"{split[:2]}{index:04d}".encode()
        records.append(sample_data.sequence_example(video_id, labels, rgb, audio, id_feature))
    return records


def write_fraction(directory, fraction, frames_range, seed=0):
    """Writes each split at `fraction` of its full size; returns {split: {videos,
    files, bytes}}."""
    num_classes = yt8m_format.DATASET_VERSIONS["2018"]["num_classes"]
    written = {}
    for split, full in FULL_DATASET.items():
        videos = max(round(full["videos"] * fraction), 1)
        files = min(max(round(full["files"] * fraction), 1), videos)
        records = _template_records(split, frames_range, num_classes, seed)
        total = 0
        for file_index in range(files):
            path = os.path.join(directory, f"{split}{file_index:04d}.tfrecord")
            first, last = file_index * videos // files, (file_index + 1) * videos // files
            with tf.io.TFRecordWriter(path) as writer:
                for video in range(first, last):
                    writer.write(records[video % len(records)])
            total += tf.io.gfile.stat(path).length
        written[split] = {"videos": videos, "files": files, "bytes": total}
    return written


def _measured(binary, flags, description):
    """{bytes_read, read_calls, peak_bytes, wall_seconds} of `binary` with `flags`:
    its reads from the start of its main (its imports left out)."""
    with tempfile.TemporaryDirectory() as folder:
        report = os.path.join(folder, "report.json")
        command = [sys.executable, "-c", _MEASURED, report, binary, *flags]
        logging.info("scale: measuring %s", description)
        start = time.time()
        child = subprocess.run(
            command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
        )
        wall = time.time() - start
        if child.returncode:
            sys.stderr.write(child.stderr[-4000:])
            raise UserError(f"scale: {description} exited with {child.returncode}")
        with open(report) as stream:
            figures = json.load(stream)
    figures["wall_seconds"] = round(wall, 2)
    return figures


STAGES = ("startup", "evaluation", "inference")
_FIGURES = ("bytes_read", "read_calls", "peak_bytes", "wall_seconds")


def _stages(options, data_dir, run_dir, model_flags):
    code_dir = os.path.dirname(options.binary)
    train, validate = (os.path.join(code_dir, name) for name in ("train.py", "validate.py"))
    inference = os.path.join(code_dir, "inference.py")
    eval_data = os.path.join(data_dir, "validate*.tfrecord")
    return {
        "startup": (
            train,
            [
                f"--train_dir={run_dir}",
                f"--train_data_pattern={os.path.join(data_dir, 'train*.tfrecord')}",
                "--num_epochs=1",
                "--max_steps=1",
                f"--batch_size={options.batch_size}",
                *model_flags,
            ],
        ),
        "evaluation": (
            validate,
            [
                f"--train_dir={run_dir}",
                f"--eval_data_pattern={eval_data}",
                "--run_once",
                f"--batch_size={options.batch_size}",
            ],
        ),
        "inference": (
            inference,
            [
                f"--train_dir={run_dir}",
                f"--input_data_pattern={eval_data}",
                f"--output_file={os.path.join(run_dir, 'predictions.csv')}",
                f"--batch_size={options.batch_size}",
            ],
        ),
    }


def _line(xs, ys, x):
    """The straight line through (xs, ys) (least squares) at x; one point: y."""
    if len(xs) < 2:
        return ys[0]
    slope, intercept = np.polyfit(xs, ys, 1)
    return float(slope * x + intercept)


def _extrapolated(stage, measured, options):
    """The stage's figures at the full dataset. The passes read every video: their
    bytes, read calls and time follow a line in the videos; their peak is the
    largest measured, plus for the evaluation what its metrics keep per video
    (7 bytes per top-k entry, `ranked_entries.py`). The start-up reads what it
    needs whatever the data's size (the test of this mode holds it to that), so
    its figures are the largest measured; the JSON keeps each size's."""
    largest = max(measured, key=lambda row: row["fraction"])["stages"][stage]
    if stage == "startup":
        figures = {name: largest[name] for name in _FIGURES}
    else:
        xs = [row["data"]["validate"]["videos"] for row in measured]
        full = FULL_DATASET["validate"]["videos"]
        figures = {
            name: max(_line(xs, [row["stages"][stage][name] for row in measured], full), 0)
            for name in _FIGURES
        }
        kept = 7 * EvaluationSettings.top_k if stage == "evaluation" else 0
        figures["peak_bytes"] = largest["peak_bytes"] + kept * (full - max(xs))
    figures = {name: round(value, 1) for name, value in figures.items()}
    figures["storage_seconds"] = round(_storage_seconds(figures, options), 1)
    return figures


def _storage_seconds(figures, options):
    return figures["read_calls"] * options.storage_latency_ms / 1000 + figures["bytes_read"] / (
        options.storage_bandwidth_mb_s * 1e6
    )


def bench_scale(options):
    unknown = sorted(set(options.scale_stages) - set(STAGES))
    if unknown or "startup" not in options.scale_stages:
        raise UserError(
            f"--scale_stages={','.join(options.scale_stages)}: give startup and any of "
            f"{', '.join(STAGES[1:])}"
        )
    fractions = sorted(float(value) for value in options.scale_fractions)
    frames_range = tuple(int(value) for value in options.scale_frames)
    model_flags = [
        arg
        for arg in options.args
        if not arg.startswith(
            ("--what", "--output_json", "--scale_", "--storage_", "--batch_size", "--train_dir")
        )
    ]
    measured = []
    with tempfile.TemporaryDirectory() as folder:
        for fraction in fractions:
            data_dir = os.path.join(folder, f"data_{fraction}")
            run_dir = os.path.join(folder, f"run_{fraction}")
            os.makedirs(data_dir)
            logging.info("scale: writing %g of the 2018 frame-level data", fraction)
            written = write_fraction(data_dir, fraction, frames_range)
            row = {"fraction": fraction, "data": written, "stages": {}}
            stages = _stages(options, data_dir, run_dir, model_flags)
            for stage in options.scale_stages:
                binary, flags = stages[stage]
                row["stages"][stage] = _measured(binary, flags, f"{stage} at {fraction:g}")
            measured.append(row)
    table = {stage: _extrapolated(stage, measured, options) for stage in options.scale_stages}
    record_bytes = [
        row["data"][split]["bytes"] / row["data"][split]["videos"]
        for row in measured
        for split in FULL_DATASET
    ]
    figures = {
        "scale_fractions": fractions,
        "scale_measured": measured,
        "scale_full_dataset": FULL_DATASET,
        "scale_extrapolated": table,
        "scale_record_bytes_mean": round(float(np.mean(record_bytes))),
        "scale_real_record_bytes": round(REAL_RECORD_BYTES),
        "scale_frames": list(frames_range),
        "storage_latency_ms": options.storage_latency_ms,
        "storage_bandwidth_mb_s": options.storage_bandwidth_mb_s,
    }
    logging.info("scale: extrapolated to the full dataset\n%s", format_table(table, options))
    return figures


def format_table(table, options):
    lines = [
        "| stage | bytes read | read calls | peak memory | wall time here | "
        f"storage time ({options.storage_latency_ms:g} ms, "
        f"{options.storage_bandwidth_mb_s:g} MB/s) |",
        "|---|---|---|---|---|---|",
    ]
    for stage, figures in table.items():
        lines.append(
            f"| {stage} | {figures['bytes_read'] / 1e9:,.2f} GB | {figures['read_calls']:,.0f} | "
            f"{figures['peak_bytes'] / 2**30:,.2f} GiB | "
            f"{progress.format_seconds(figures['wall_seconds'])} | "
            f"{progress.format_seconds(figures['storage_seconds'])} |"
        )
    return "\n".join(lines)
