"""LiteRT export of the scored model: export_model.py --format=litert in float32,
dynamic-range int8 and full-integer int8, run by inference.py --litert_model,
against the run's own predictions; and the errors of what cannot be exported."""

import json
import os
import shutil
import subprocess

import numpy as np

from testlib import binary_launcher, project_with_a_family, read_json, run_binary

QUANTIZATIONS = ("none", "dynamic_range", "full_integer")
# Top-20 agreement with the float32 graph and GAP change, bounds per quantisation
# (figures here: 1.0 and 0; 1.0 and 0.0002; 0.987 and 0.002).
AGREEMENT = {"none": 0.999, "dynamic_range": 0.97, "full_integer": 0.9}
GAP_DELTA = {"none": 1e-4, "dynamic_range": 0.01, "full_integer": 0.01}


def _rows(path):
    with open(path) as handle:
        next(handle)
        rows = [line.rstrip("\n").split(",", 1) for line in handle]
    return {
        video: (pairs.split()[::2], np.array(pairs.split()[1::2], float)) for video, pairs in rows
    }


def _agreement(reference, other):
    assert list(reference) == list(other)  # the same videos, in the same order
    shared = [len(set(reference[v][0]) & set(other[v][0])) for v in reference]
    return sum(shared) / sum(len(reference[v][0]) for v in reference)


def test_litert_student_predicts_like_the_run(small_sample, shared_run, tmp_path):
    sample_dir, _ = small_sample
    run = shared_run("teacher_student")
    data = f"{sample_dir}/validate*.tfrecord"
    reference = tmp_path / "reference.csv"
    run_binary(
        "inference.py",
        f"--train_dir={run}",
        f"--input_data_pattern={data}",
        f"--output_file={reference}",
    )
    outputs = [str(reference)]
    for quantize in QUANTIZATIONS:
        export = tmp_path / quantize
        # full_integer calibrates on the run's training data (its train_flags.json).
        run_binary(
            "export_model.py",
            f"--train_dir={run}",
            f"--export_dir={export}",
            "--format=litert",
            f"--quantize={quantize}",
            "--batch_size=16",
            "--representative_batches=2",
        )
        assert sorted(os.listdir(export)) == ["model.tflite", "model_flags.json"]
        assert read_json(export / "model_flags.json")["models"] == ["student"]
        output = tmp_path / f"{quantize}.csv"
        result = run_binary(
            "inference.py",
            f"--litert_model={export}",
            f"--input_data_pattern={data}",
            f"--output_file={output}",
            "--batch_size=7",  # batches of other sizes than the calibration's
        )
        assert "LiteRT model" in result.stderr
        outputs.append(str(output))

    # The model takes only the student's frames, every 10th of the run's 60:
    # [batch, 6, 1152] and the counts.
    from ai_edge_litert.interpreter import Interpreter

    inputs = Interpreter(model_path=str(tmp_path / "none" / "model.tflite")).get_input_details()
    shapes = {d["name"]: list(d["shape_signature"]) for d in inputs}
    assert shapes == {"video_matrix": [-1, 6, 1152], "num_frames": [-1]}

    def int8_activations(quantize):
        interpreter = Interpreter(model_path=str(tmp_path / quantize / "model.tflite"))
        frames = [1, 6, 1152]  # the input, quantised to int8 inside the model
        return [
            d
            for d in interpreter.get_tensor_details()
            if d["dtype"] == np.int8 and list(d["shape"]) == frames
        ]

    assert not int8_activations("dynamic_range") and int8_activations("full_integer")
    sizes = {q: os.path.getsize(tmp_path / q / "model.tflite") for q in QUANTIZATIONS}
    assert sizes["dynamic_range"] < 0.5 * sizes["none"]  # int8 weights (small tensors stay float)

    expected = _rows(reference)
    float_rows = _rows(tmp_path / "none.csv")
    for video, (classes, scores) in expected.items():
        assert float_rows[video][0] == classes
        np.testing.assert_allclose(float_rows[video][1], scores, atol=2e-6)
    metrics = tmp_path / "metrics.json"
    run_binary(
        "ensemble.py",
        f"--input_files={','.join(outputs)}",
        f"--output_file={tmp_path / 'unused.csv'}",
        f"--eval_data_pattern={data}",
        f"--metrics_json={metrics}",
    )
    gaps = {entry["file"]: entry["gap"] for entry in read_json(metrics)["inputs"]}
    for quantize in QUANTIZATIONS:
        agreement = _agreement(expected, _rows(tmp_path / f"{quantize}.csv"))
        delta = abs(gaps[str(tmp_path / f"{quantize}.csv")] - gaps[str(reference)])
        assert agreement >= AGREEMENT[quantize], (quantize, agreement)
        assert delta <= GAP_DELTA[quantize], (quantize, delta)


# A family LiteRT cannot take: an integer clip of the frame counts becomes an
# integer Relu6, which LiteRT's kernels lack.
CLIPPED_FAMILY = '''"""The mean of at most the first six frames, counted by an integer clip."""

import dataclasses

import tensorflow as tf

from fewer_frames.models.base_model import BaseModel
from fewer_frames.models.video_level_models import ClassifierParams, classify


@dataclasses.dataclass(frozen=True)
class ClippedMeanParams(ClassifierParams):
    pass


class ClippedMeanModel(BaseModel):
    Params = ClippedMeanParams

    @classmethod
    def forward_flops(cls, params, frames, feature_sizes):
        return 0, sum(feature_sizes)

    def create_model(
        self, model_input, vocab_size, num_frames, is_training=False, feature_sizes=None, **params
    ):
        own = self.params(**params)
        count = tf.clip_by_value(tf.cast(num_frames, tf.int32), 0, 6)
        mask = tf.sequence_mask(count, tf.shape(model_input)[1], model_input.dtype)
        total = tf.reduce_sum(model_input * mask[:, :, None], axis=1)
        mean = total / tf.maximum(tf.cast(count, model_input.dtype), 1.0)[:, None]
        return {"representation": mean, **classify(mean, vocab_size, own)}
'''


def _binary(root, script, *flags, env=None):
    return subprocess.run(
        [binary_launcher(), f"code_student_uniform/{script}", *flags],
        cwd=root,
        capture_output=True,
        text=True,
        env=dict(os.environ, **(env or {})),
        timeout=600,
    )


def test_what_cannot_be_exported_or_run_is_a_clear_error(small_sample, shared_run, tmp_path):
    sample_dir, _ = small_sample
    root = project_with_a_family(tmp_path, "clipped_models.py", CLIPPED_FAMILY)
    run = tmp_path / "run"
    trained = _binary(
        root,
        "train.py",
        f"--train_dir={run}",
        f"--train_data_pattern={sample_dir}/train*.tfrecord",
        "--model=ClippedMeanModel",
        "--training_mode=student_only",
        "--batch_size=8",
        "--max_steps=1",
        "--num_epochs=0",
    )
    assert trained.returncode == 0, trained.stderr[-3000:]
    export = tmp_path / "export"
    refused = _binary(
        root, "export_model.py", f"--train_dir={run}", f"--export_dir={export}", "--format=litert"
    )
    assert refused.returncode == 1, refused.stderr[-3000:]
    message = refused.stderr.split("ERROR: ", 1)[1]
    assert message.startswith(
        f"LiteRT cannot convert the student (ClippedMeanModel) of {run}/model.ckpt-1: "
    ), message
    assert "'tf.Relu6' op is neither a custom op nor a flex op" in message, message
    assert "Traceback" not in refused.stderr
    assert not export.exists() and os.listdir(tmp_path).count("export") == 0

    shared = shared_run("teacher_student")
    mixed = run_binary(
        "export_model.py",
        f"--train_dir={shared}",
        f"--export_dir={export}",
        "--format=litert",
        "--precision=bfloat16",
        check=False,
    )
    assert mixed.returncode == 1
    assert "ERROR: --format=litert takes neither --precision nor --xla" in mixed.stderr

    not_an_export = run_binary(
        "inference.py",
        f"--litert_model={shared}",
        f"--input_data_pattern={sample_dir}/test*.tfrecord",
        f"--output_file={tmp_path / 'p.csv'}",
        check=False,
    )
    assert not_an_export.returncode == 1
    assert f"ERROR: {shared} is not a LiteRT export (it needs model.tflite" in not_an_export.stderr

    # Without the interpreter installed (an import of it fails), the message says how.
    blocker = tmp_path / "no_litert" / "ai_edge_litert"
    blocker.mkdir(parents=True)
    (blocker / "__init__.py").write_text("raise ImportError('not installed')\n")
    good = tmp_path / "good"
    run_binary(
        "export_model.py", f"--train_dir={shared}", f"--export_dir={good}", "--format=litert"
    )
    missing = run_binary(
        "inference.py",
        f"--litert_model={good}",
        f"--input_data_pattern={sample_dir}/test*.tfrecord",
        f"--output_file={tmp_path / 'p.csv'}",
        env={"PYTHONPATH": str(blocker.parent)},
        fresh_process=True,
        check=False,
    )
    assert missing.returncode == 1, missing.stderr[-3000:]
    assert (
        "ERROR: running a .tflite model needs the LiteRT interpreter: "
        "pip install -r requirements-litert.txt" in missing.stderr
    )
    assert not (tmp_path / "p.csv").exists()

    # A damaged model file: named, in one line, and no output.
    broken = tmp_path / "broken"
    shutil.copytree(good, broken)
    (broken / "model.tflite").write_bytes(b"not a flatbuffer" * 64)
    damaged = run_binary(
        "inference.py",
        f"--litert_model={broken}",
        f"--input_data_pattern={sample_dir}/test*.tfrecord",
        f"--output_file={tmp_path / 'p.csv'}",
        check=False,
    )
    assert damaged.returncode == 1, damaged.stderr[-3000:]
    assert f"ERROR: the LiteRT interpreter cannot run {broken}/model.tflite: " in damaged.stderr
    assert "Traceback" not in damaged.stderr and not (tmp_path / "p.csv").exists()


def test_full_integer_without_calibration_data_is_refused(shared_run, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(
        shared_run("teacher_student"), run, ignore=shutil.ignore_patterns("train_flags.json")
    )
    result = run_binary(
        "export_model.py",
        f"--train_dir={run}",
        f"--export_dir={tmp_path / 'export'}",
        "--format=litert",
        "--quantize=full_integer",
        check=False,
    )
    assert result.returncode == 1
    assert f"ERROR: {run} does not say what it was trained on" in result.stderr
    assert json.dumps(sorted(os.listdir(tmp_path))) == json.dumps(["run"])
