"""The 2019 Segments release: the segment reader, MAP@K and the segment GAP, and
the whole path through the binaries (fine-tune on rated segments, evaluate,
write the submission, score it)."""

import os
import random

import numpy as np
import pytest
import tensorflow as tf

from fewer_frames.evaluation import segment_metrics
from fewer_frames.inputs import frame_selection, readers, record_checks
from fewer_frames.models import losses
from fewer_frames.system.errors import UserError
from testlib import (
    REAL_DATA_DIR,
    TINY_INPUT,
    event_values,
    read_json,
    run_binary,
    run_inference,
    run_session,
    traced_inference_peak,
)


def segment_record(video_id=b"vid1", frames=12, ratings=(), lists=None):
    """A 2019 SequenceExample: frame f has every rgb byte f+1 (audio 0), and the
    ratings [(start, class, score)]; `lists` replaces the three lists as given."""
    example = tf.train.SequenceExample()
    context = example.context.feature
    context["id"].bytes_list.value.append(video_id)
    context["labels"].int64_list.value.extend(sorted({c for _, c, _ in ratings}))
    if lists is None:
        lists = [[rating[field] for rating in ratings] for field in range(3)]
    starts, classes, scores = lists
    context["segment_start_times"].int64_list.value.extend(starts)
    context["segment_labels"].int64_list.value.extend(classes)
    context["segment_scores"].float_list.value.extend(scores)
    for frame in range(frames):
        example.feature_lists.feature_list["rgb"].feature.add().bytes_list.value.append(
            bytes([frame + 1]) * 1024
        )
        example.feature_lists.feature_list["audio"].feature.add().bytes_list.value.append(
            bytes(128)
        )
    return example.SerializeToString()


def _write(path, *records):
    with tf.io.TFRecordWriter(str(path)) as writer:
        for record in records:
            writer.write(record)
    return str(path)


def _read_segments(path, **options):
    reader = readers.make_reader(True, num_classes=10, max_frames=20, segment_size=5)
    batch = readers.get_input_data_tensors(
        reader, path, batch_size=4, num_epochs=1, shuffle=False, **options
    )
    values = []
    with tf.compat.v1.Session() as session:
        for value in readers.run_to_end(session, batch, reader, path):
            values.append(value)
    return {key: np.concatenate([v[key] for v in values]) for key in values[0]}


def test_the_reader_on_a_hand_built_record(tmp_path):
    path = _write(
        tmp_path / "segments.tfrecord",
        # Segment 0 carries two classes; the segment at 10 runs past the 12 frames.
        segment_record(ratings=[(0, 3, 1.0), (0, 7, 0.0), (5, 3, 0.0), (10, 9, 1.0)]),
        segment_record(b"vid2", frames=6, ratings=[(5, 1, 1.0)]),
    )
    got = _read_segments(path)
    assert got["video_ids"].tolist() == [b"vid1:0", b"vid1:5", b"vid1:10", b"vid2:5"]
    assert got["num_frames"].tolist() == [5, 5, 2, 1]
    expected_labels = np.zeros((4, 10))
    expected_weights = np.zeros((4, 10))
    for row, c, score in ((0, 3, 1), (0, 7, 0), (1, 3, 0), (2, 9, 1), (3, 1, 1)):
        expected_labels[row, c], expected_weights[row, c] = score, 1
    np.testing.assert_array_equal(got["labels"], expected_labels)
    np.testing.assert_array_equal(got["label_weights"], expected_weights)
    # The segment's frames first (frame f has codes f+1), the rest of max_frames zero.
    matrix = got["video_matrix"]
    assert matrix.shape == (4, 20, 1152)
    rgb_code = np.round((matrix[:, :, 0] + 2.0 - 4.0 / 512) * 255.0 / 4.0)
    assert rgb_code[0, :5].tolist() == [1, 2, 3, 4, 5]
    assert rgb_code[1, :5].tolist() == [6, 7, 8, 9, 10]
    assert rgb_code[2, :2].tolist() == [11, 12]
    assert np.all(matrix[2, 2:] == 0) and np.all(matrix[:, 5:] == 0)
    assert rgb_code[3, 0] == 6 and np.all(matrix[3, 1:] == 0)


@pytest.mark.parametrize(
    "record, problem",
    [
        (segment_record(frames=6, ratings=[(6, 3, 1.0)]), "starting at frame 6, past its 6"),
        (segment_record(lists=((0, 5), (3,), (1.0, 0.0))), "segment lists of unequal length"),
    ],
)
def test_bad_segment_records_are_named_or_skipped(tmp_path, record, problem):
    good = segment_record(ratings=[(0, 3, 1.0)])
    path = _write(tmp_path / "bad.tfrecord", good, record)
    with pytest.raises(UserError, match=f"bad.tfrecord, record 1.*{problem}"):
        _read_segments(path)
    counter = record_checks.BadRecordCounter()
    got = _read_segments(path, skip_bad_records=True, bad_records=counter)
    assert got["video_ids"].tolist() == [b"vid1:0"] and counter.count == 1


def test_the_label_loss_counts_only_rated_pairs():
    predictions = np.array([[0.9, 0.2, 0.6], [0.3, 0.8, 0.5]], np.float32)
    labels = np.array([[1, 0, 1], [0, 1, 0]], np.float32)
    weights = np.array([[1, 0, 0], [0, 1, 1]], np.float32)
    loss = run_session(
        losses.CrossEntropyLoss().calculate_loss(
            tf.constant(predictions), tf.constant(labels), tf.constant(weights)
        )
    )
    eps = losses.EPSILON
    by_hand = -(np.log(0.9 + eps) + np.log(0.8 + eps) + np.log(1 - 0.5 + eps)) / 2
    assert loss == pytest.approx(by_hand, rel=1e-6)


def test_average_precision_at_k_by_hand():
    ratings = {"a": 1.0, "b": 0.0, "c": 1.0, "d": 1.0}
    # Rated in list order: a (hit), b, c (hit); x is unrated and ignored; d never listed.
    ap = segment_metrics.average_precision_at_k(["a", "x", "b", "c"], ratings, k=10)
    assert ap == pytest.approx((1 / 1 + 2 / 3) / 3)
    # K shorter than the list: only "a", "x" count; the divisor is min(positives, K).
    assert segment_metrics.average_precision_at_k(["a", "x", "b", "c"], ratings, k=2) == 0.5
    assert segment_metrics.average_precision_at_k(["a"], {"a": 0.0}, k=5) is None
    mean, aps = segment_metrics.mean_average_precision_at_k(
        {1: ["a", "c"], 2: ["b"], 3: ["a"]}, {1: ratings, 2: {"b": 1.0}, 3: {"a": 0.0}}, k=10
    )
    assert aps == {1: pytest.approx(2 / 3), 2: 1.0} and mean == pytest.approx((2 / 3 + 1) / 2)


def _plain_map_and_gap(ids, scores, labels, weights, classes, k):
    """MAP@K and the segment GAP by plain Python over the pooled lists."""
    aps = []
    for c in classes:
        ranked = sorted(range(len(ids)), key=lambda s: (-scores[s][c], s))[:k]
        rated = [labels[s][c] for s in ranked if weights[s][c]]
        positives = sum(1 for s in range(len(ids)) if weights[s][c] and labels[s][c])
        if not positives:
            continue
        precisions = [sum(rated[: i + 1]) / (i + 1) for i, hit in enumerate(rated) if hit]
        aps.append(sum(precisions) / min(positives, k))
    pairs = sorted(
        (-scores[s][c], labels[s][c])
        for s in range(len(ids))
        for c in range(len(scores[0]))
        if weights[s][c]
    )
    hits, gap = 0, 0.0
    for rank, (_, label) in enumerate(pairs, start=1):
        if label:
            hits += 1
            gap += hits / rank
    return sum(aps) / len(aps), gap / hits


@pytest.mark.parametrize("k", [3, 7, 1000])
@pytest.mark.parametrize("ties", [True, False])
def test_map_at_k_and_gap_equal_a_plain_computation(k, ties):
    rng = random.Random(k)
    count, num_classes, classes = 60, 6, [0, 2, 3, 5]
    ids = [f"v{s // 4}:{5 * (s % 4)}" for s in range(count)]
    # Scores on a coarse grid: ties, broken by arrival order in both computations
    # (without ties, each later (segment, class) a hair lower: the same order, no tie).
    scores = [
        [rng.randrange(8) / 8 - (0 if ties else (s * num_classes + c) * 1e-7) for c in range(6)]
        for s in range(count)
    ]
    weights = [[int(rng.random() < 0.4) for _ in range(num_classes)] for _ in range(count)]
    labels = [[int(w and rng.random() < 0.5) for w in row] for row in weights]
    for s in range(count):
        weights[s][5] = labels[s][5] = 0  # a whitelisted class never rated: left out
    metrics = segment_metrics.SegmentMetrics(classes, k)
    for start in range(0, count, 8):  # batches of 8; k=3 prunes the lists many times
        rows = slice(start, start + 8)
        metrics.accumulate(
            ids[rows], np.array(scores[rows]), np.array(labels[rows]), np.array(weights[rows])
        )
    got = metrics.get()
    expected_map, expected_gap = _plain_map_and_gap(ids, scores, labels, weights, classes, k)
    assert got["segment_map"] == pytest.approx(expected_map)
    if not ties:  # (the GAP's order among tied pairs is the AP calculator's own)
        assert got["segment_gap"] == pytest.approx(expected_gap)
    assert got["classes_scored"] == 3 and got["num_segments"] == count
    assert len(metrics.top.scores) <= 2 * k + 8


@pytest.fixture(scope="module")
def segment_sample(tmp_path_factory):
    folder = tmp_path_factory.mktemp("segment_sample")
    run_binary(
        "make_sample_data.py",
        f"--output_dir={folder}",
        "--segments",
        "--num_train_files=1",
        "--num_validate_files=1",
        "--videos_per_file=100",
    )
    return str(folder)


def _ratings_by_protobuf(path):
    """[(segment id, class, score)] of every record of a file, by a protobuf parse."""
    ratings = []
    for record in tf.compat.v1.io.tf_record_iterator(path):
        example = tf.train.SequenceExample.FromString(record)
        context = example.context.feature
        video_id = context["id"].bytes_list.value[0].decode()
        frames = len(example.feature_lists.feature_list["rgb"].feature)
        rows = zip(
            context["segment_start_times"].int64_list.value,
            context["segment_labels"].int64_list.value,
            context["segment_scores"].float_list.value,
            strict=True,
        )
        for start, c, score in rows:
            assert start % 5 == 0 and 0 <= start < min(frames, 300)
            ratings.append((f"{video_id}:{start}", c, score))
    return ratings


def test_the_sample_rates_segments_where_classes_happen(segment_sample):
    ratings = _ratings_by_protobuf(f"{segment_sample}/segments_validate0000.tfrecord")
    scores = [score for _, _, score in ratings]
    assert 0.2 < np.mean(scores) < 0.8 and len({c for _, c, _ in ratings}) > 10
    assert len(ratings) > 3 * 100
    # The test split carries no ratings and no labels; the plain splits no ratings.
    assert _ratings_by_protobuf(f"{segment_sample}/segments_test0000.tfrecord") == []
    assert _ratings_by_protobuf(f"{segment_sample}/validate0000.tfrecord") == []


def test_fine_tune_on_segments_evaluate_submit_and_score(segment_sample, shared_run, tmp_path):
    finetune_dir = tmp_path / "finetune"
    run_binary(
        "train_convert_model.py",
        f"--train_dir={shared_run('all_frames')}",
        f"--finetune_dir={finetune_dir}",
    )
    rated = f"{segment_sample}/segments_validate*.tfrecord"
    segments = ["--segment_labels", "--segment_top_k=50"]

    def evaluated(name):
        path = tmp_path / f"{name}.json"
        run_binary(
            "eval_finetune.py",
            f"--train_dir={finetune_dir}",
            f"--eval_data_pattern={rated}",
            "--run_once",
            f"--metrics_json={path}",
            *segments,
        )
        return read_json(path)

    before = evaluated("before")
    # 60 steps at 0.03 took the segment MAP from 0.045 to 0.18 (2026-12-07).
    steps = 60
    run_binary(
        "train_finetune.py",
        f"--train_dir={finetune_dir}",
        f"--train_data_pattern={segment_sample}/segments_train*.tfrecord",
        *TINY_INPUT,
        f"--max_steps={steps}",
        "--base_learning_rate=0.03",
        "--segment_labels",
    )
    after = evaluated("after")
    assert after["global_step"] == steps and after["num_examples"] == before["num_examples"]
    assert after["segment_map"] > before["segment_map"] + 0.05, (before, after)
    assert after["segment_gap"] > before["segment_gap"]
    submission = tmp_path / "submission.csv"
    run_inference(finetune_dir, rated, submission, *segments)
    lines = submission.read_text().splitlines()
    assert lines[0] == "Class,Segments" and len(lines) == 1 + 3862
    assert all(len(line.split(",")[1].split()) == 50 for line in lines[1:])
    scored = tmp_path / "scored.json"
    result = run_binary(
        "score_segments.py",
        f"--submission_file={submission}",
        f"--eval_data_pattern={rated}",
        "--segment_top_k=50",
        f"--metrics_json={scored}",
    )
    assert read_json(scored)["segment_map"] == pytest.approx(after["segment_map"], abs=1e-12)
    assert f"Segment MAP@50: {after['segment_map']:.6f}" in result.stdout
    summaries = event_values(str(finetune_dir / "eval"))
    assert summaries["eval/segment_map"][steps] == pytest.approx(after["segment_map"], abs=1e-6)
    assert summaries["eval/segment_gap"][steps] == pytest.approx(after["segment_gap"], abs=1e-6)
    # The challenge's 1,000-class list: only the sample's classes on it are scored.
    whitelist = os.path.join(REAL_DATA_DIR, "segment_label_ids_2019.csv")
    listed = set(segment_metrics.read_class_list(whitelist))
    assert len(listed) == 1000
    on_list = run_binary(
        "score_segments.py",
        f"--submission_file={submission}",
        f"--eval_data_pattern={rated}",
        "--segment_top_k=50",
        f"--segment_classes={whitelist}",
        f"--metrics_json={scored}",
    )
    rated_classes = {c for _, c, score in _ratings_by_protobuf(rated.replace("*", "0000")) if score}
    assert read_json(scored)["classes_scored"] == len(rated_classes & listed) > 0, on_list.stdout


def test_segment_inference_memory_stays_flat(segment_sample, shared_run, tmp_path):
    with open(f"{segment_sample}/segments_validate0000.tfrecord", "rb") as handle:
        records = handle.read()
    classes = tmp_path / "classes.csv"
    classes.write_text("Index\n" + "".join(f"{c}\n" for c in range(0, 3862, 7)))  # 552

    def traced_peak_bytes(copies):
        folder = tmp_path / str(copies)
        folder.mkdir()
        (folder / "rated.tfrecord").write_bytes(records * copies)
        peak = traced_inference_peak(
            f"--train_dir={shared_run('all_frames')}",
            f"--input_data_pattern={folder}/rated.tfrecord",
            f"--output_file={folder}/submission.csv",
            "--segment_labels",
            "--segment_top_k=20",
            f"--segment_classes={classes}",
            "--batch_size=64",
        )
        lines = (folder / "submission.csv").read_text().splitlines()
        assert len(lines) == 1 + 552 and lines[1].startswith("0,")
        return peak

    few, many = traced_peak_bytes(1), traced_peak_bytes(4)
    # Keeping every segment's scores and ids for the 552 classes would add about
    # 20 bytes x 552 classes per segment: some 13 MB for the 3 copies more.
    growth_mb = (many - few) / 2**20
    assert growth_mb < 4, (few, many)
    assert os.path.getsize(tmp_path / "4" / "submission.csv") > 0


def test_a_student_reads_every_frame_of_a_segment(tmp_path):
    """Whether the reader selects (a student-only run) or the graph does (teacher
    and student): the student gets the segment's frames, not a stride over them."""
    path = _write(tmp_path / "segments.tfrecord", segment_record(ratings=[(5, 3, 1.0)]))
    selection = frame_selection.FrameSelection("uniform", every_n=4, max_frames=20)
    student_reader = readers.make_reader(
        True, num_classes=10, max_frames=20, segment_size=5, frame_selection=selection
    )
    batch = readers.get_input_data_tensors(
        student_reader, path, batch_size=4, num_epochs=1, shuffle=False
    )
    whole = _read_segments(path)
    in_graph = frame_selection.select_frames(
        tf.constant(whole["video_matrix"]),
        tf.constant(whole["num_frames"]),
        selection,
        segments=True,
    )
    read, (graph_frames, graph_count) = run_session([batch, in_graph])
    assert read["num_frames"].tolist() == graph_count.tolist() == [5]
    assert read["video_matrix"].shape == graph_frames.shape == (1, 5, 1152)
    np.testing.assert_array_equal(read["video_matrix"], graph_frames)
    np.testing.assert_array_equal(graph_frames, whole["video_matrix"][:, :5])
