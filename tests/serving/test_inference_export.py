"""inference.py and export_model.py through their binaries."""

import json
import os
import subprocess

import numpy as np
import pytest

from fewer_frames.evaluation import eval_util
from metric_oracles import brute_force_gap_and_map, brute_force_hit_at_one_and_perr
from testlib import binary_launcher, read_csv, run_binary, traced_inference_peak


@pytest.fixture
def runs(shared_run):
    """A teacher-student run, its converted student, and a teacher-only run."""
    return {
        "teacher_student": shared_run("teacher_student"),
        "student": shared_run("converted"),
        "teacher": shared_run("teacher"),
    }


def labels_of(pattern):
    """{video id: label list} by a direct protobuf parse."""
    import glob

    import tensorflow as tf

    labels = {}
    for path in sorted(glob.glob(pattern)):
        for raw in tf.compat.v1.io.tf_record_iterator(path):
            context = tf.train.SequenceExample.FromString(raw).context.feature
            labels[context["id"].bytes_list.value[0].decode()] = list(
                context["labels"].int64_list.value
            )
    return labels


@pytest.mark.parametrize(
    "run, flags, scored",
    [
        ("teacher_student", [], "student"),
        ("teacher_student", ["--eval_model=teacher"], "teacher"),
        ("student", [], "student"),
        ("teacher", [], "teacher"),
    ],
)
def test_inference_csv_matches_evaluation(run, flags, scored, runs, small_sample, tmp_path):
    sample_dir, _ = small_sample
    validate = f"{sample_dir}/validate*.tfrecord"
    output = tmp_path / "predictions.csv"
    result = run_binary(
        "inference.py",
        f"--train_dir={runs[run]}",
        *flags,
        f"--input_data_pattern={validate}",
        f"--output_file={output}",
    )
    assert f"of 60 videos ({scored} of" in result.stderr
    rows = read_csv(output)
    labels = labels_of(validate)
    assert sorted(rows) == sorted(labels)
    for indexes, scores in rows.values():
        assert len(indexes) == 20 and np.all(np.diff(scores) <= 0)
        assert indexes.min() >= 0 and indexes.max() < 3862
    # GAP of the CSV's top 20 equals the evaluation's.
    metrics = tmp_path / "metrics.json"
    run_binary(
        "validate.py",
        f"--train_dir={runs[run]}",
        *flags,
        "--run_once",
        f"--eval_data_pattern={validate}",
        f"--metrics_json={metrics}",
    )
    predictions = np.zeros((len(rows), 3862))
    actuals = np.zeros((len(rows), 3862))
    for row, (video_id, (indexes, scores)) in enumerate(sorted(rows.items())):
        predictions[row, indexes] = scores + 1e-3  # above the classes left out
        actuals[row, labels[video_id]] = 1
    expected = json.loads(metrics.read_text())
    assert expected["model"] == scored
    assert eval_util.calculate_gap(predictions, actuals) == pytest.approx(expected["gap"], abs=2e-3)
    # Every metric depends on the top 20 alone (no video has more labels): the
    # evaluation's, computed in its graph, equal the oracles' on the CSV's rows.
    assert actuals.sum(axis=1).max() <= 20
    hit_at_one, perr = brute_force_hit_at_one_and_perr(predictions, actuals)
    gap, mean_ap, mean_ap_present = brute_force_gap_and_map(predictions, actuals, top_k=20)
    for name, value in (
        ("hit_at_one", hit_at_one),
        ("perr", perr),
        ("gap", gap),
        ("map", mean_ap),
        ("map_present_classes", mean_ap_present),
    ):
        assert expected[name] == pytest.approx(value, abs=2e-3), name


# One file with the 60 test videos once, then one with them 40 times (2,400
# videos): the same file count, so only the number of videos differs.
FEW_COPIES, COPIES = 1, 40


def test_inference_on_unlabelled_data_and_flat_memory(runs, small_sample, tmp_path):
    sample_dir, _ = small_sample
    with open(f"{sample_dir}/test0000.tfrecord", "rb") as handle:
        records = handle.read()  # TFRecord files concatenate into a valid file
    for name, copies in (("few", FEW_COPIES), ("many", COPIES)):
        (tmp_path / name).mkdir()
        (tmp_path / name / "test0000.tfrecord").write_bytes(records * copies)

    def traced_peak_bytes(name):
        return traced_inference_peak(
            f"--train_dir={runs['teacher_student']}",
            f"--input_data_pattern={tmp_path / name}/test*.tfrecord",
            f"--output_file={tmp_path / name}.csv",
            "--batch_size=64",
        )

    few = traced_peak_bytes("few")
    many = traced_peak_bytes("many")
    assert len(read_csv(tmp_path / "few.csv")) == 60
    with open(tmp_path / "many.csv") as handle:
        assert len(handle.read().splitlines()) == 1 + COPIES * 60
    # Keeping the predictions (3,862 float32 per video) of the 2,340 more videos
    # would add 36 MB; streamed rows measured under 0.01 MB.
    growth_mb = (many - few) / 2**20
    assert growth_mb < 4, (few, many)


def test_export_reloads_and_matches_inference(runs, small_sample, tmp_path):
    sample_dir, _ = small_sample
    export_dir = tmp_path / "export"
    run_binary(
        "export_model.py",
        f"--train_dir={runs['teacher_student']}",
        f"--export_dir={export_dir}",
        "--top_k=7",
        fresh_process=True,  # once through a new interpreter, as a user runs it
    )
    again = run_binary(
        "export_model.py",
        f"--train_dir={runs['teacher_student']}",
        f"--export_dir={export_dir}",
        check=False,
    )
    assert again.returncode == 1 and "exists; choose a new directory" in again.stderr
    output = tmp_path / "predictions.csv"
    run_binary(
        "inference.py",
        f"--train_dir={runs['teacher_student']}",
        "--top_k=7",
        f"--input_data_pattern={sample_dir}/test*.tfrecord",
        f"--output_file={output}",
    )
    expected = read_csv(output)
    # Reload in a TF2 (eager) process of its own, as a serving user would.
    code = f"""
import json, tensorflow as tf
model = tf.saved_model.load({str(export_dir)!r})
serve = model.signatures["serving_default"]
records = [r.numpy() for r in tf.data.TFRecordDataset({sample_dir + "/test0000.tfrecord"!r})]
out = serve(input_batch_unparsed=tf.constant(records))
print(json.dumps({{"ids": [v.decode() for v in out["video_id"].numpy()],
                   "indexes": out["class_indexes"].numpy().tolist(),
                   "scores": out["predictions"].numpy().tolist()}}))
"""
    result = subprocess.run(
        [binary_launcher(), "-c", code],
        capture_output=True,
        text=True,
        timeout=300,
        env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"),
    )
    assert result.returncode == 0, result.stderr[-3000:]
    served = json.loads(result.stdout.splitlines()[-1])
    assert sorted(served["ids"]) == sorted(expected)
    for video_id, indexes, scores in zip(
        served["ids"], served["indexes"], served["scores"], strict=True
    ):
        np.testing.assert_array_equal(indexes, expected[video_id][0])
        np.testing.assert_allclose(scores, expected[video_id][1], atol=2e-6)
