"""A new model family is one new file: written in the project's models package, it
trains, evaluates, is benchmarked and runs in a Table 1 grid with no other edit."""

import json
import os
import subprocess

from testlib import binary_launcher, launcher_environment, project_with_a_family, read_json

FAMILY = '''"""A family in one file: the mean of the real frames through one hidden layer."""

import dataclasses

import tensorflow as tf

from fewer_frames.models import layers
from fewer_frames.models.base_model import BaseModel, hyperparameter
from fewer_frames.models.video_level_models import ClassifierParams, classify


@dataclasses.dataclass(frozen=True)
class MeanPoolParams(ClassifierParams):
    meanpool_hidden_size: int = hyperparameter(16, "Hidden units of MeanPoolModel.")


class MeanPoolModel(BaseModel):
    Params = MeanPoolParams

    @classmethod
    def forward_flops(cls, params, frames, feature_sizes):
        hidden = params.meanpool_hidden_size
        return 2 * sum(feature_sizes) * hidden, hidden

    def create_model(
        self, model_input, vocab_size, num_frames, is_training=False, feature_sizes=None, **params
    ):
        own = self.params(**params)
        count = tf.maximum(tf.cast(num_frames, model_input.dtype), 1.0)[:, None]
        mean = tf.reduce_sum(model_input, axis=1) / count
        hidden = tf.nn.relu(layers.dense(mean, own.meanpool_hidden_size, "hidden"))
        return {"representation": hidden, **classify(hidden, vocab_size, own)}
'''
HIDDEN = 12


def _flops(classes):
    """By hand: the hidden layer, then the MoE classifier (2 experts)."""
    return 2 * 1152 * HIDDEN + 2 * HIDDEN * classes * (2 * 2 + 1)


def _run(root, *command, env=None):
    result = subprocess.run(
        list(command),
        cwd=root,
        capture_output=True,
        text=True,
        env=dict(os.environ, **(env or {})),
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    return result


def test_a_family_in_one_new_file_works_everywhere(small_sample, tmp_path):
    sample_dir, _ = small_sample
    root = project_with_a_family(tmp_path, "meanpool_models.py", FAMILY)
    code = root / "code_student_uniform"
    model = ["--model=MeanPoolModel", f"--meanpool_hidden_size={HIDDEN}"]
    benchmark = tmp_path / "models.json"
    _run(
        root,
        binary_launcher(),
        str(code / "benchmark.py"),
        "--what=models",
        *model,
        "--batch_size=8",
        "--model_batches=1",
        f"--data_pattern={sample_dir}/validate*.tfrecord",
        f"--output_json={benchmark}",
    )
    figures = json.loads(benchmark.read_text())
    # The benchmark counts the paper's 4716 classes unless told otherwise.
    assert figures["teacher"]["flops_per_video"] == _flops(4716)
    assert figures["student"]["flops_per_video"] == _flops(4716)  # the mean costs no matmul

    output_dir = tmp_path / "grid"
    _run(
        root,
        "bash",
        str(root / "run_table1.sh"),
        f"--output_dir={output_dir}",
        "--rows=uniform",
        "--ks=6",
        *model,
        "--batch_size=16",
        "--num_readers=2",
        "--num_epochs=0",
        "--max_steps=4",
        env={"YT8M_DIR": sample_dir, **launcher_environment()},
    )
    # The grid's cell trained through train.py and was scored through validate.py.
    (result,) = read_json(output_dir / "results.json")
    assert result["model"] == "MeanPoolModel" and result["flops_per_video"] == _flops(3862)
    assert result["steps"] == 4 and 0 < result["gap"] <= 1
    saved = read_json(os.path.join(result["run_dir"], "model_flags.json"))
    assert saved["model"] == "MeanPoolModel"
    assert saved["model_params"]["meanpool_hidden_size"] == HIDDEN
