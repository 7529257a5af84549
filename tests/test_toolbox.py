"""The YouTube-8M toolbox around the pipeline: ensembles of prediction files and
class names (vocabularies), through the binaries."""

import csv
import json
import os

import pytest

from fewer_frames.evaluation import evaluation_loop
from testlib import read_csv, read_json, run_binary, run_inference

VOCABULARY_2018 = os.path.join(
    os.path.dirname(__file__), "..", "..", "shared", "data", "yt8m_real", "vocabulary_2018.csv"
)
LABEL_NAMES_2017 = os.path.join(os.path.dirname(VOCABULARY_2018), "label_names_2017.csv")


def _write(path, rows):
    """A predictions CSV from {video: [(class, score), ...]}."""
    lines = ["VideoId,LabelConfidencePairs"]
    lines += [f"{video}," + " ".join(f"{c} {s}" for c, s in pairs) for video, pairs in rows]
    path.write_text("\n".join(lines) + "\n")
    return str(path)


def _ensemble(tmp_path, files, *flags, check=True):
    output = tmp_path / "ensemble.csv"
    result = run_binary(
        "ensemble.py",
        "--input_files=" + ",".join(files),
        f"--output_file={output}",
        *flags,
        check=check,
    )
    return result, output


def _rows(path):
    """{video: [(class, score), ...]} of a CSV, in file order."""
    return {
        video: list(zip(classes.tolist(), scores.tolist(), strict=True))
        for video, (classes, scores) in read_csv(path).items()
    }


@pytest.fixture
def two_files(tmp_path):
    first = _write(tmp_path / "a.csv", [("v1", [(3, 0.9), (1, 0.5)]), ("v2", [(2, 0.4)])])
    second = _write(
        tmp_path / "b.csv", [("v1", [(1, 0.7), (4, 0.2)]), ("v2", [(2, 0.8), (0, 0.1)])]
    )
    return [first, second]


# By hand: a class missing from a file's row scores 0 there.
EXPECTED = {
    ("--method=max",): {
        "v1": [(3, 0.9), (1, 0.7), (4, 0.2)],
        "v2": [(2, 0.8), (0, 0.1)],
    },
    ("--method=mean",): {
        "v1": [(1, 0.6), (3, 0.45), (4, 0.1)],
        "v2": [(2, 0.6), (0, 0.05)],
    },
    ("--method=mean", "--weights=3,1"): {
        "v1": [(3, 0.675), (1, 0.55), (4, 0.05)],
        "v2": [(2, 0.5), (0, 0.025)],
    },
    ("--method=max", "--top_k=1"): {"v1": [(3, 0.9)], "v2": [(2, 0.8)]},
}


@pytest.mark.parametrize("flags", list(EXPECTED))
def test_ensemble_methods_on_hand_made_files(two_files, tmp_path, flags):
    _, output = _ensemble(tmp_path, two_files, *flags)
    got = _rows(output)
    expected = EXPECTED[flags]
    assert list(got) == list(expected)
    for video, pairs in expected.items():
        assert [c for c, _ in got[video]] == [c for c, _ in pairs]
        assert [s for _, s in got[video]] == pytest.approx([s for _, s in pairs], abs=1e-6)


@pytest.mark.parametrize(
    "rows, message",
    [
        ([("v1", [(1, 0.1)]), ("v3", [(2, 0.4)])], "b.csv line 3 is video v3, but"),
        ([("v1", [(1, 0.1)])], "b.csv ends before"),
    ],
)
def test_files_that_disagree_on_their_videos_are_refused(two_files, tmp_path, rows, message):
    other = _write(tmp_path / "b.csv", rows)
    result, output = _ensemble(tmp_path, [two_files[0], other], check=False)
    assert result.returncode == 1 and message in result.stderr, result.stderr[-2000:]
    assert "Traceback" not in result.stderr and "video v" in result.stderr
    assert not output.exists()


def test_bad_weights_and_a_bad_file_are_one_line(two_files, tmp_path):
    result, _ = _ensemble(tmp_path, two_files, "--method=max", "--weights=1,2", check=False)
    assert result.returncode == 1 and "only --method=mean takes weights" in result.stderr
    result, _ = _ensemble(tmp_path, two_files, "--weights=1", check=False)
    assert result.returncode == 1 and "give 2 non-negative weights" in result.stderr
    broken = tmp_path / "broken.csv"
    broken.write_text("VideoId,LabelConfidencePairs\nv1,3 0.9 1\n")
    result, _ = _ensemble(tmp_path, [two_files[0], str(broken)], check=False)
    assert result.returncode == 1 and f"{broken} line 2" in result.stderr
    assert "Traceback" not in result.stderr


def test_ensemble_metrics_of_one_input_equal_validate(small_sample, shared_run, tmp_path):
    sample_dir, _ = small_sample
    run = shared_run("teacher_student")
    data = f"{sample_dir}/validate*.tfrecord"
    predictions = str(tmp_path / "predictions.csv")
    run_inference(run, data, predictions)
    validated = str(tmp_path / "validate.json")
    run_binary(
        "validate.py", f"--train_dir={run}", f"--eval_data_pattern={data}", "--run_once",
        f"--metrics_json={validated}",
    )  # fmt: skip
    metrics = str(tmp_path / "ensemble.json")
    result, output = _ensemble(
        tmp_path,
        [predictions, predictions],
        f"--eval_data_pattern={data}",
        f"--metrics_json={metrics}",
    )
    expected, got = read_json(validated), read_json(metrics)
    assert [entry["file"] for entry in got["inputs"]] == [predictions, predictions]
    # Each input, and their mean (the mean of a file and itself is the file).
    for source in got["inputs"] + [got["ensemble"]]:
        for name in ("gap", "map", "hit_at_one", "perr", "num_examples"):
            assert source[name] == pytest.approx(expected[name], abs=2e-5), (source, name)
    assert f"GAP {expected['gap']:.4f}" in result.stdout
    assert _rows(output).keys() == _rows(predictions).keys()


def _vocabulary_by_csv(path, index, name):
    with open(path, newline="") as handle:
        return {int(row[index]): row[name] for row in csv.DictReader(handle)}


def test_inference_writes_class_names_beside_the_csv(small_sample, shared_run, tmp_path):
    sample_dir, _ = small_sample
    output = tmp_path / "predictions.csv"
    run_inference(
        shared_run("teacher_student"),
        f"{sample_dir}/validate*.tfrecord",
        output,
        f"--vocabulary={VOCABULARY_2018}",
        "--top_k=5",
    )
    names = _vocabulary_by_csv(VOCABULARY_2018, "Index", "Name")
    assert names[0] == "Game"
    lines = (tmp_path / "predictions.jsonl").read_text().splitlines()
    rows = read_csv(str(output))
    assert len(lines) == len(rows)
    for line in lines:
        entry = json.loads(line)
        classes, scores = rows[entry["video_id"]]
        assert [c["class"] for c in entry["classes"]] == classes.tolist()
        assert [c["name"] for c in entry["classes"]] == [names[c] for c in classes]
        assert [c["score"] for c in entry["classes"]] == pytest.approx(scores, abs=1e-6)


def test_validate_lists_the_best_and_worst_classes_by_name(small_sample, shared_run, tmp_path):
    sample_dir, _ = small_sample
    metrics = tmp_path / "metrics.json"
    result = run_binary(
        "validate.py",
        f"--train_dir={shared_run('teacher_student')}",
        f"--eval_data_pattern={sample_dir}/validate*.tfrecord",
        "--run_once",
        f"--metrics_json={metrics}",
        "--per_class_report=3",
        f"--vocabulary={VOCABULARY_2018}",
    )
    report = read_json(metrics)
    names = _vocabulary_by_csv(VOCABULARY_2018, "Index", "Name")
    best, worst = report["best_classes"], report["worst_classes"]
    assert len(best) == len(worst) == 3
    assert [e["ap"] for e in best] == sorted((e["ap"] for e in best), reverse=True)
    assert [e["ap"] for e in worst] == sorted(e["ap"] for e in worst)
    assert best[0]["ap"] >= worst[0]["ap"] and all(e["positives"] > 0 for e in best + worst)
    assert all(e["name"] == names[e["class"]] for e in best + worst)
    assert f"Best classes (AP): {best[0]['name']}" in result.stderr


def test_both_vocabulary_formats_and_a_wrong_file(small_sample, shared_run, tmp_path):
    sample_dir, _ = small_sample
    flags = [
        f"--train_dir={shared_run('teacher_student')}",
        f"--input_data_pattern={sample_dir}/validate*.tfrecord",
        f"--output_file={tmp_path / 'p.csv'}",
        "--top_k=1",
    ]
    run_binary("inference.py", *flags, f"--vocabulary={LABEL_NAMES_2017}")
    names = _vocabulary_by_csv(LABEL_NAMES_2017, "label_id", "label_name")
    for line in (tmp_path / "p.jsonl").read_text().splitlines():
        (top,) = json.loads(line)["classes"]
        assert top["name"] == names.get(top["class"], "")
    wrong = tmp_path / "wrong.csv"
    wrong.write_text("a,b\n1,2\n")
    result = run_binary("inference.py", *flags, f"--vocabulary={wrong}", check=False)
    assert result.returncode == 1 and f"--vocabulary: {wrong} is neither" in result.stderr


def test_the_per_class_report_by_hand():
    aps = [0.5, 0.1, 0.9, 0.0, 0.3]
    positives = [1, 2, 0, 1, 3]  # class 2 has no positive: left out, whatever its AP
    report = evaluation_loop.per_class_report(aps, positives, 2, {0: "zero", 3: "three"})
    assert report["best_classes"] == [
        {"class": 0, "name": "zero", "ap": 0.5, "positives": 1},
        {"class": 4, "name": "", "ap": 0.3, "positives": 3},
    ]
    assert report["worst_classes"] == [
        {"class": 3, "name": "three", "ap": 0.0, "positives": 1},
        {"class": 1, "name": "", "ap": 0.1, "positives": 2},
    ]
