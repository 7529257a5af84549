"""Bad input, bad flags and interruptions, each through a real binary."""

import glob
import json
import os
import pathlib
import random
import re
import shutil
import signal
import subprocess
import time

import numpy as np
import pytest
import tensorflow as tf

from fewer_frames.config import settings
from fewer_frames.evaluation import evaluation_loop
from fewer_frames.inputs import readers
from fewer_frames.models import model_config
from fewer_frames.run_dirs import checkpoints, run_directory, run_files
from fewer_frames.system.errors import UserError
from testlib import CODE_DIR, PROJECT_ROOT, TINY_MODEL, Started, binary_launcher, run_binary

TINY = [*TINY_MODEL, "--batch_size=8", "--num_readers=2"]


def frame_record(
    video_id=b"abcd",
    labels=(5,),
    rgb_frames=4,
    audio_frames=None,
    rgb_bytes=1024,
    id_key="id",
    feature_names=("rgb", "audio"),
):
    """A SequenceExample; the arguments make it good or bad in one way."""
    audio_frames = rgb_frames if audio_frames is None else audio_frames
    example = tf.train.SequenceExample()
    example.context.feature[id_key].bytes_list.value.append(video_id)
    example.context.feature["labels"].int64_list.value.extend(labels)
    sizes = {"rgb": (rgb_frames, rgb_bytes), "audio": (audio_frames, 128)}
    for name in feature_names:
        count, size = sizes[name]
        frames = example.feature_lists.feature_list[name].feature
        for frame in range(count):
            frames.add().bytes_list.value.append(bytes([frame % 256]) * size)
    return example.SerializeToString()


def video_record(mean_rgb=None, labels=(5,)):
    example = tf.train.Example()
    example.features.feature["id"].bytes_list.value.append(b"wxyz")
    example.features.feature["labels"].int64_list.value.extend(labels)
    rgb = np.full(1024, 0.1) if mean_rgb is None else mean_rgb
    example.features.feature["mean_rgb"].float_list.value.extend(rgb)
    example.features.feature["mean_audio"].float_list.value.extend(np.full(128, 0.1))
    return example.SerializeToString()


def write_records(path, records):
    with tf.io.TFRecordWriter(str(path)) as writer:
        for record in records:
            writer.write(record)
    return str(path)


def with_bad_at_2(path, bad):
    """Two good records, the bad one (index 2), one good one."""
    return write_records(path, [frame_record(), frame_record(), bad, frame_record()])


def wrong_frame_size():
    example = tf.train.SequenceExample.FromString(frame_record())
    example.feature_lists.feature_list["rgb"].feature[1].bytes_list.value[0] = b"x" * 1000
    return example.SerializeToString()


@pytest.fixture
def student_run(shared_run):
    """A tiny trained student-only run to evaluate bad data with (read only)."""
    return shared_run("student")


def assert_clear_failure(result, *expected):
    output = result.stderr
    assert result.returncode == 1, output[-3000:]
    for text in expected:
        assert text in output, f"{text!r} not in:\n{output[-3000:]}"
    assert "Traceback" not in output


FRAME_CASES = {
    "no_rgb": (lambda: frame_record(feature_names=("audio",)), "has no feature list 'rgb'"),
    "frame_size": (
        wrong_frame_size,
        "has frame 1 of 'rgb' with 1000 bytes, but --feature_sizes gives 1024",
    ),
    "unequal_counts": (
        lambda: frame_record(rgb_frames=5, audio_frames=4),
        "has different frame counts per feature: 5 'rgb', 4 'audio'",
    ),
    "zero_frames": (lambda: frame_record(rgb_frames=0), "has zero frames"),
    "no_frame_lists": (
        lambda: frame_record(feature_names=()),
        "has zero frames (no feature lists)",
    ),
    "label_range": (
        lambda: frame_record(labels=(3, 4000)),
        "has label 4000 outside 0..3861 (--num_classes=3862) (the 2017 version has 4716",
    ),
    "label_at_class_count": (
        lambda: frame_record(labels=(3, 3862)),
        "has label 3862 outside 0..3861 (--num_classes=3862)",
    ),
    "id_key": (
        lambda: frame_record(id_key="video_id"),
        "has no 'id' but has 'video_id': it looks like the 2017 version of YouTube-8M; use "
        "--dataset_version=2017",
    ),
}


# One case of each kind goes through validate.py; the others through the same
# library path in this process (the run's reader, its pipeline, run_to_end).
BINARY_CASES = {"frame_size", "truncated"}


def _library_error(run_dir, pattern):
    """The message with which the evaluation input of `run_dir` stops on `pattern`."""
    config = run_files.read_model_config(os.path.join(run_dir, run_files.MODEL_FLAGS_FILE))
    reader = config.reader()
    with tf.Graph().as_default():
        batch = readers.get_input_data_tensors(
            reader, pattern, batch_size=512, num_epochs=1, shuffle=False
        )
        with tf.compat.v1.Session() as session, pytest.raises(UserError) as error:
            for _ in readers.run_to_end(session, batch, reader, pattern):
                pass
    return str(error.value)


def _assert_named(case, run_dir, pattern, *expected):
    if case in BINARY_CASES:
        result = run_binary(
            "validate.py",
            f"--train_dir={run_dir}",
            f"--eval_data_pattern={pattern}",
            "--run_once",
            check=False,
        )
        assert_clear_failure(result, *expected)
        return result.stderr
    message = _library_error(run_dir, pattern)
    for text in expected:
        assert text in message, message
    return message


@pytest.mark.parametrize("case", sorted(FRAME_CASES))
def test_bad_frame_records_are_named(case, student_run, tmp_path):
    make, message = FRAME_CASES[case]
    path = with_bad_at_2(tmp_path / f"validate_{case}.tfrecord", make())
    _assert_named(case, student_run, path, f"{path}, record 2 {message}")


def _corrupt(path, kind):
    with open(path, "rb") as handle:
        data = bytearray(handle.read())
    if kind == "truncated":
        data = data[: len(data) - 3000]
    elif kind == "crc":
        second = 16 + int.from_bytes(data[:8], "little")
        data[second + 12 + 100] ^= 0xFF  # a byte in the payload of record 1
    else:
        data = bytearray(b"video,labels\nabc,1 2\n")
    with open(path, "wb") as handle:
        handle.write(bytes(data))
    return path


@pytest.mark.parametrize(
    "kind, message",
    [
        ("truncated", "record 3 is corrupted or truncated"),
        ("crc", "record 1 is corrupted or truncated"),
        ("text", "record 0 is not a TFRecord file"),
    ],
)
def test_unreadable_files_are_named(kind, message, student_run, tmp_path):
    good = write_records(tmp_path / "validate_good.tfrecord", [frame_record()] * 4)
    bad = _corrupt(write_records(tmp_path / "validate_bad.tfrecord", [frame_record()] * 4), kind)
    output = _assert_named(
        kind,
        student_run,
        f"{tmp_path}/validate*.tfrecord",
        f"{bad}, {message}",
        "--skip_bad_records",
    )
    assert good not in output


def test_patterns_that_match_nothing_or_a_directory(student_run, tmp_path):
    (tmp_path / "validate_dir.tfrecord").mkdir()
    result = run_binary(
        "validate.py",
        f"--train_dir={student_run}",
        f"--eval_data_pattern={tmp_path}/validate*",
        "--run_once",
        check=False,
    )
    assert_clear_failure(result, "validate_dir.tfrecord", "is a directory, not a TFRecord file")
    result = run_binary(
        "validate.py",
        f"--train_dir={student_run}",
        f"--eval_data_pattern={tmp_path}/nothing*.tfrecord",
        "--run_once",
        check=False,
    )
    assert_clear_failure(result, "No files found matching data pattern", "nothing*.tfrecord")


@pytest.mark.parametrize(
    "record, message",
    [
        (lambda: video_record(mean_rgb=np.full(1024, np.nan)), "'mean_rgb' holds NaN or infinite"),
        (
            lambda: video_record(mean_rgb=np.ones(1000)),
            "'mean_rgb' has 1000 values, but --feature_sizes gives 1024",
        ),
    ],
)
def test_bad_video_level_records_are_named(record, message, tmp_path):
    path = write_records(
        tmp_path / "train0.tfrecord", [video_record(), video_record(), record(), video_record()]
    )
    result = run_binary(
        "train.py",
        f"--train_dir={tmp_path / 'run'}",
        f"--train_data_pattern={path}",
        "--training_mode=teacher_only",
        "--frame_features=False",
        "--model=LogisticModel",
        "--batch_size=4",
        "--num_epochs=1",
        check=False,
    )
    assert_clear_failure(result, f"{path}, record 2 {message}")


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--every_n=0"], "--every_n=0 must be in 1..60 (--max_num_frames)"),
        (["--every_n=400"], "--every_n=400 must be in 1..60"),
        (["--student_num_inputs_to_lstm=7"], "6 frames cannot be cut into 7 equal chunks"),
        (["--feature_names=rgb"], "--feature_names has 1 entries (rgb) but --feature_sizes has 2"),
        (
            ["--model=NoSuchModel"],
            "Unknown model 'NoSuchModel'; available: FrameLevelLogisticModel",
        ),
        (["--label_loss=NoSuchLoss"], "Unknown loss 'NoSuchLoss'; available: CrossEntropyLoss"),
        (["--optimizer=NoSuchOptimizer"], "Unknown --optimizer 'NoSuchOptimizer'; known: Adam"),
        (["--video_level_classifier_model=Nope"], "Unknown classifier 'Nope'; available:"),
    ],
)
def test_bad_training_flags(flags, message, small_sample, tmp_path):
    sample_dir, _ = small_sample
    result = run_binary(
        "train.py",
        f"--train_dir={tmp_path / 'run'}",
        f"--train_data_pattern={sample_dir}/train*.tfrecord",
        "--max_steps=1",
        *TINY,
        *flags,
        check=False,
    )
    assert_clear_failure(result, message)


@pytest.mark.parametrize(
    "error, one_line",
    [("UserError('bad flag')", True), ("ValueError('a bug')", False)],
)
def test_user_errors_are_one_line_and_bugs_keep_their_traceback(error, one_line):
    code = (
        "from fewer_frames.system import runtime\n"
        "from fewer_frames.system.errors import UserError\n"
        f"def main(argv):\n    raise {error}\nruntime.run(main)\n"
    )
    result = subprocess.run(
        [binary_launcher(), "-c", code],
        capture_output=True,
        text=True,
        cwd=CODE_DIR,
        timeout=120,
    )
    assert result.returncode == 1, result.stderr[-3000:]
    if one_line:
        assert_clear_failure(result, "ERROR: bad flag")
    else:
        assert "Traceback" in result.stderr and "ValueError: a bug" in result.stderr


def test_models_benchmark_without_data_fails_in_one_line(tmp_path):
    result = run_binary(
        "benchmark.py",
        "--what=models",
        f"--data_pattern={tmp_path}/none*.tfrecord",
        "--lstm_cells=8",
        check=False,
    )
    assert_clear_failure(result, "No files found matching data pattern")
    assert result.stderr.count("ERROR:") == 1


def test_bad_top_k(student_run, small_sample):
    sample_dir, _ = small_sample
    result = run_binary(
        "validate.py",
        f"--train_dir={student_run}",
        "--top_k=0",
        "--run_once",
        f"--eval_data_pattern={sample_dir}/validate*.tfrecord",
        check=False,
    )
    assert_clear_failure(result, "--top_k=0 must be positive")


def test_skip_bad_records_counts_and_continues(student_run, tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    with_bad_at_2(data / "validate0.tfrecord", frame_record(rgb_frames=0))
    write_records(data / "validate1.tfrecord", [frame_record(), wrong_frame_size(), frame_record()])
    _corrupt(write_records(data / "validate2.tfrecord", [frame_record()] * 4), "truncated")
    metrics = tmp_path / "metrics.json"
    result = run_binary(
        "validate.py",
        f"--train_dir={student_run}",
        f"--eval_data_pattern={data}/validate*",
        "--run_once",
        "--skip_bad_records",
        f"--metrics_json={metrics}",
    )
    import json

    values = json.loads(metrics.read_text())
    # 3 + 2 good in the first two files, 3 readable in the truncated one.
    assert values["num_examples"] == 8
    assert values["skipped_records"] == 3
    assert "Skipped bad records: 3" in result.stderr
    assert f"skipping bad record {data}/validate0.tfrecord, record 2: has zero frames" in (
        result.stderr
    )
    train = run_binary(
        "train.py",
        f"--train_dir={tmp_path / 'run'}",
        f"--train_data_pattern={data}/validate*",
        "--training_mode=student_only",
        "--num_epochs=1",
        "--skip_bad_records",
        *TINY,
    )
    assert re.search(r"Final checkpoint at global step \d+ .*; skipped 3 bad records", train.stderr)


def test_each_evaluation_counts_its_own_skipped_records(student_run, tmp_path):
    """An evaluator that scores one checkpoint after another reports, each time,
    the bad records of that pass only."""
    with_bad_at_2(tmp_path / "validate0.tfrecord", frame_record(rgb_frames=0))
    requested = model_config.RequestedModel()
    config = run_directory.existing_run(requested, student_run)
    evaluation = settings.EvaluationSettings(
        eval_data_pattern=f"{tmp_path}/validate*",
        inputs=settings.InputSettings(batch_size=8, skip_bad_records=True),
    )
    checkpoint = checkpoints.latest_checkpoint(student_run)
    passes = [
        evaluation_loop.evaluate_checkpoint(config, "student", checkpoint, evaluation)
        for _ in range(2)
    ]
    assert [result["skipped_records"] for result in passes] == [1, 1]
    assert [result["num_examples"] for result in passes] == [3, 3]


def test_a_checkpoint_rotated_away_while_it_is_restored_is_skipped(
    small_sample, student_run, tmp_path, monkeypatch
):
    """A trainer's rotation can remove the files of the checkpoint an evaluator has
    just opened: the evaluator looks again and scores the next one, no traceback."""
    run = tmp_path / "run"
    shutil.copytree(student_run, run)
    older = checkpoints.latest_checkpoint(str(run))
    newer = f"{older.rsplit('-', 1)[0]}-{checkpoints.checkpoint_step(older) + 1}"
    for path in glob.glob(older + ".*"):
        shutil.copy(path, newer + path[len(older) :])
    tf.compat.v1.train.update_checkpoint_state(
        str(run), os.path.basename(newer), [os.path.basename(older), os.path.basename(newer)]
    )
    open_checkpoint = tf.compat.v1.train.NewCheckpointReader

    def rotated_after_opening(path):
        reader = open_checkpoint(path)
        if path == newer:
            for name in glob.glob(newer + ".*"):
                os.remove(name)
        return reader

    monkeypatch.setattr(tf.compat.v1.train, "NewCheckpointReader", rotated_after_opening)
    result = evaluation_loop.run_evaluation(
        str(run),
        settings=settings.EvaluationSettings(
            eval_data_pattern=f"{small_sample[0]}/validate*.tfrecord",
            run_once=True,
            inputs=settings.InputSettings(batch_size=64),
        ),
    )
    assert result["checkpoint"] == older and result["num_examples"] > 0


def _diverging_run(sample_dir, train_dir, learning_rate, max_steps, *flags):
    """Plain, unclipped gradient steps of a huge learning rate."""
    return run_binary(
        "train.py",
        f"--train_dir={train_dir}",
        f"--train_data_pattern={sample_dir}/train*.tfrecord",
        "--training_mode=student_only",
        "--optimizer=GradientDescentOptimizer",
        f"--base_learning_rate={learning_rate}",
        "--clip_gradient_norm=0",
        f"--max_steps={max_steps}",
        *flags,
        *TINY,
        check=False,
    )


def test_nan_loss_stops_before_a_bad_checkpoint(small_sample, tmp_path):
    sample_dir, _ = small_sample
    train_dir = tmp_path / "run"
    result = _diverging_run(sample_dir, train_dir, 1e25, 50, "--checkpoint_every_steps=1")
    assert_clear_failure(result, "stopped without saving", "--base_learning_rate")
    latest = tf.train.latest_checkpoint(str(train_dir))
    if latest:  # every checkpoint written holds finite weights
        reader = tf.train.load_checkpoint(latest)
        for name in reader.get_variable_to_shape_map():
            assert np.all(np.isfinite(reader.get_tensor(name))), name


def test_kill_9_at_random_moments_then_resume(small_sample, tmp_path):
    sample_dir, _ = small_sample
    train_dir = str(tmp_path / "run")

    def command(max_steps):
        # Through the fork server: SIGKILL to the launcher, and the server kills
        # the trainer at once.
        return [
            binary_launcher(),
            os.path.join(CODE_DIR, "train.py"),
            f"--train_dir={train_dir}",
            f"--train_data_pattern={sample_dir}/train*.tfrecord",
            "--training_mode=parallel",
            "--num_epochs=0",
            f"--max_steps={max_steps}",
            "--checkpoint_every_steps=1",
            "--log_every_steps=1",
            *TINY,
        ]

    rng = random.Random(7)
    last_step = 0
    for _ in range(3):
        process = subprocess.Popen(
            command(400), cwd=PROJECT_ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        # Once training runs, kill at a random moment (with a save every step, often mid-save).
        deadline = time.time() + 90
        while time.time() < deadline and tf.train.latest_checkpoint(train_dir) in (None, ""):
            time.sleep(0.1)
        time.sleep(rng.uniform(0.5, 3.0))
        os.kill(process.pid, signal.SIGKILL)
        process.wait()
        latest = tf.train.latest_checkpoint(train_dir)
        assert latest, "no complete checkpoint after the kill"
        step = int(tf.train.load_checkpoint(latest).get_tensor("global_step"))
        assert step >= last_step
        last_step = step
    final = subprocess.run(
        command(last_step + 3), cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=300
    )
    assert final.returncode == 0, final.stderr[-3000:]
    assert "Resumed from" in final.stderr
    steps = [int(s) for s in re.findall(r"training step (\d+)\|", final.stderr)]
    assert steps == [last_step + 1, last_step + 2, last_step + 3]
    losses = [float(v) for v in re.findall(r"L_CE: ([0-9.e+-]+)", final.stderr)]
    assert len(losses) == 3 and all(np.isfinite(losses))


def test_evaluation_loop_survives_checkpoint_rotation(small_sample, tmp_path):
    sample_dir, _ = small_sample
    train_dir = str(tmp_path / "run")
    common = [
        f"--train_data_pattern={sample_dir}/train*.tfrecord",
        "--training_mode=student_only",
        "--num_epochs=0",
        *TINY,
    ]
    run_binary("train.py", f"--train_dir={train_dir}", "--max_steps=1", *common)
    log_path = tmp_path / "follower.log"
    with open(log_path, "w") as log:
        follower = subprocess.Popen(
            [
                binary_launcher(),
                os.path.join(CODE_DIR, "validate.py"),
                f"--train_dir={train_dir}",
                f"--eval_data_pattern={sample_dir}/validate*.tfrecord",
                "--eval_interval_secs=0",
                "--batch_size=8",
            ],
            cwd=PROJECT_ROOT,
            stdout=subprocess.DEVNULL,
            stderr=log,
            text=True,
        )
    try:
        # The evaluator has read the first checkpoint before training goes on (under load it
        # could otherwise start only after every checkpoint but the last has gone).
        deadline = time.time() + 120
        while "evaluation of student at global step 1|" not in log_path.read_text():
            assert follower.poll() is None, log_path.read_text()[-3000:]
            assert time.time() < deadline, log_path.read_text()[-3000:]
            time.sleep(0.5)
        # One checkpoint kept, a new one every step: checkpoints vanish under the evaluator.
        run_binary(
            "train.py",
            f"--train_dir={train_dir}",
            "--max_steps=60",
            "--checkpoint_every_steps=1",
            "--keep_checkpoint_max=1",
            *common,
        )
        # The evaluator goes on to the last checkpoint, which stays.
        deadline = time.time() + 180
        while "evaluation of student at global step 60" not in log_path.read_text():
            assert follower.poll() is None, log_path.read_text()[-3000:]
            assert time.time() < deadline, log_path.read_text()[-3000:]
            time.sleep(1)
    finally:
        follower.kill()
        follower.wait()
    errors = log_path.read_text()
    evaluated = set(re.findall(r"evaluation of student at global step (\d+)", errors))
    assert len(evaluated) >= 2, errors[-3000:]
    # A checkpoint was rotated away under the evaluator, and it evaluated a later one.
    vanished = errors.find("vanished")
    assert vanished >= 0, errors[-3000:]
    assert "evaluation of student at global step" in errors[vanished:], errors[-3000:]
    assert "Traceback" not in errors


def test_failed_runs_leave_no_half_written_output(student_run, tmp_path):
    # Many good records first, so output is being written when the bad one arrives.
    data = write_records(
        tmp_path / "test0.tfrecord", [frame_record()] * 40 + [frame_record(rgb_frames=0)]
    )
    out = tmp_path / "out"
    out.mkdir()
    result = run_binary(
        "inference.py",
        f"--train_dir={student_run}",
        f"--input_data_pattern={data}",
        f"--output_file={out / 'predictions.csv'}",
        "--batch_size=8",
        check=False,
    )
    assert_clear_failure(result, "record 40 has zero frames")
    result = run_binary(
        "validate.py",
        f"--train_dir={student_run}",
        f"--eval_data_pattern={data}",
        f"--metrics_json={out / 'metrics.json'}",
        "--batch_size=8",
        "--run_once",
        check=False,
    )
    assert_clear_failure(result, "record 40 has zero frames")
    assert os.listdir(out) == []


def test_weights_that_overflow_after_a_finite_loss_are_not_saved(small_sample, tmp_path):
    """A learning rate of 1e39 is infinite in float32: the first step's loss (of the
    initial weights) is finite, the weights after it are not."""
    sample_dir, _ = small_sample
    train_dir = tmp_path / "run"
    result = _diverging_run(sample_dir, train_dir, 1e39, 1, "--num_epochs=0")
    assert_clear_failure(
        result,
        "weights became NaN or infinite by global step 1; stopped without saving "
        f"(no checkpoint in {train_dir} yet)",
    )
    assert "loss became" not in result.stderr  # not the check of the losses
    assert tf.train.latest_checkpoint(str(train_dir)) is None


def _copy_run(source, target, **edits):
    """A copy of a run directory, with files replaced by the given texts."""
    shutil.copytree(source, target)
    for name, text in edits.items():
        (target / name).write_text(text)
    return target


def _teacher_with_other_settings(student_run, target):
    """The student run's files, its model_flags.json saying a 4-unit teacher."""
    config = json.loads((pathlib.Path(student_run) / "model_flags.json").read_text())
    config.update(models=["teacher"])
    config["model_params"]["lstm_cells"] = 4
    return _copy_run(student_run, target, **{"model_flags.json": json.dumps(config)})


FAILURE_CASES = {
    "corrupt model_flags.json": (
        "validate.py",
        lambda run, tmp: [f"--train_dir={_copy_run(run, tmp / 'r', **{'model_flags.json': '{'})}"],
        "model_flags.json is not a valid model_flags.json",
    ),
    "corrupt train_flags.json": (
        "train.py",
        lambda run, tmp: [
            f"--train_dir={_copy_run(run, tmp / 'r', **{'train_flags.json': '[1, 2'})}",
            "--training_mode=student_only",
            "--max_steps=2",
        ],
        "train_flags.json is not a valid train_flags.json",
    ),
    "teacher of a student-only run": (
        "validate.py",
        lambda run, tmp: [f"--train_dir={run}", "--eval_model=teacher"],
        "--eval_model=teacher: {run} holds only student",
    ),
    "serial without a teacher": (
        "train.py",
        lambda run, tmp: [
            f"--train_dir={tmp / 'serial'}",
            "--training_mode=serial",
            f"--teacher_dir={run}",
        ],
        "--teacher_dir={run} holds no teacher",
    ),
    "serial with another teacher": (
        "train.py",
        lambda run, tmp: [
            f"--train_dir={tmp / 'serial'}",
            "--training_mode=serial",
            f"--teacher_dir={_teacher_with_other_settings(run, tmp / 'teacher')}",
        ],
        "was built with other settings: --lstm_cells: teacher 4, this run 8",
    ),
    "finetune_dir is train_dir": (
        "train_convert_model.py",
        lambda run, tmp: [f"--train_dir={run}", f"--finetune_dir={run}"],
        "--finetune_dir must differ from --train_dir",
    ),
    "empty evaluation file": (
        "validate.py",
        lambda run, tmp: [
            f"--train_dir={run}",
            f"--eval_data_pattern={write_records(tmp / 'empty.tfrecord', [])}",
        ],
        "holds no records",
    ),
}


@pytest.mark.parametrize("case", sorted(FAILURE_CASES))
def test_run_directory_and_data_failures_are_one_line(case, student_run, small_sample, tmp_path):
    sample_dir, _ = small_sample
    binary, flags, message = FAILURE_CASES[case]
    common = {
        "train.py": [f"--train_data_pattern={sample_dir}/train*.tfrecord", *TINY],
        "validate.py": [f"--eval_data_pattern={sample_dir}/validate*.tfrecord", "--run_once"],
        "train_convert_model.py": [],
    }
    result = run_binary(binary, *common[binary], *flags(student_run, tmp_path), check=False)
    assert_clear_failure(result, message.format(run=student_run))
    assert result.stderr.count("ERROR:") == 1


def test_a_tf_config_task_outside_its_cluster_is_one_line(tmp_path):
    cluster = {"ps": ["127.0.0.1:1"], "worker": ["127.0.0.1:2", "127.0.0.1:3"]}
    config = json.dumps({"cluster": cluster, "task": {"type": "worker", "index": 2}})
    result = run_binary(
        "train.py", f"--train_dir={tmp_path}", env={"TF_CONFIG": config}, check=False
    )
    assert_clear_failure(result, "TF_CONFIG task worker:2 is not in its cluster")


def test_a_data_file_that_vanishes_mid_run_is_named(small_sample, tmp_path):
    sample_dir, _ = small_sample
    data = tmp_path / "data"
    shutil.copytree(sample_dir, data, ignore=shutil.ignore_patterns("validate*", "test*"))
    training = Started(
        tmp_path / "train.log",
        "train.py",
        f"--train_dir={tmp_path / 'run'}",
        f"--train_data_pattern={data}/train*.tfrecord",
        "--training_mode=student_only",
        "--num_epochs=0",
        "--log_every_steps=1",
        *TINY,
    )
    try:
        deadline = time.time() + 120
        while "training step 2|" not in training.log():
            assert training.process.poll() is None and time.time() < deadline, training.log()
            time.sleep(0.1)
        os.remove(data / "train0001.tfrecord")  # read again at the next epoch
        assert training.process.wait(timeout=120) == 1
    finally:
        training.process.kill()
        training.process.wait()
    output = training.log()
    assert f"ERROR: {data}/train0001.tfrecord is gone: the data file was removed" in output
    assert "Traceback" not in output
