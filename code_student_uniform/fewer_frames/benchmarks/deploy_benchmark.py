"""The deployment benchmark (benchmark.py --what=deploy): a run's scored model
exported every way this project serves it, each measured in a process of its
own on the same videos.

Every variant goes from serialized records held in memory to the top classes of
each video. A SavedModel parses the records and selects the frames in its own
graph. For a LiteRT model, TensorFlow's reader decodes the frames the model
takes (timed with the model), and the LiteRT interpreter runs the model.
"""

import os
import resource
import statistics
import time

import numpy as np
import tensorflow as tf

from fewer_frames.evaluation import eval_util
from fewer_frames.run_dirs import run_files
from fewer_frames.serving import exports, litert_model

TOP_K = 20
# name: (format, export options)
VARIANTS = {
    "saved_model_float32": ("saved_model", {}),
    "saved_model_xla": ("saved_model", {"xla": True}),
    "saved_model_bfloat16": ("saved_model", {"precision": "bfloat16"}),
    "litert_float32": ("litert", {"quantize": "none"}),
    "litert_dynamic_range": ("litert", {"quantize": "dynamic_range"}),
    "litert_full_integer": ("litert", {"quantize": "full_integer"}),
}
REFERENCE = "saved_model_float32"
TEACHER = "teacher_saved_model_float32"


def peak_resident_mb():
    """This process's peak resident memory (MB). Linux's VmHWM belongs to the
    running program; getrusage's ru_maxrss would also count the parent's memory
    at the fork that started it, which outlives the exec."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def records(pattern_or_files, count=None):
    """The first `count` (None: all) serialized records of the files."""
    with tf.Graph().as_default():
        dataset = tf.data.TFRecordDataset(pattern_or_files)
        if count is not None:
            dataset = dataset.take(count)
        following = tf.compat.v1.data.make_one_shot_iterator(dataset.batch(256)).get_next()
        held = []
        with tf.compat.v1.Session() as session:
            while True:
                try:
                    held.extend(session.run(following))
                except tf.errors.OutOfRangeError:
                    return held


def write_records(path, serialized):
    with tf.io.TFRecordWriter(path) as writer:
        for record in serialized:
            writer.write(record)


def export_variants(config, train_dir, folder, representative, teacher=None, checkpoint_path=""):
    """Exports the only model of `config` as every variant (and, given the
    config `teacher`, the teacher as a float32 SavedModel) under `folder`;
    returns {name: (format, path)}."""
    made = {}
    for name, (kind, options) in VARIANTS.items():
        path = os.path.join(folder, name)
        if kind == "saved_model":
            exports.saved_model(config, train_dir, path, TOP_K, checkpoint_path, **options)
        else:
            exports.litert(
                config, train_dir, path, options["quantize"], checkpoint_path, representative
            )
        made[name] = (kind, path)
    if teacher is not None:
        path = os.path.join(folder, TEACHER)
        exports.saved_model(teacher, train_dir, path, TOP_K, checkpoint_path)
        made[TEACHER] = ("saved_model", path)
    return made


def disk_bytes(path):
    """Bytes of the files under `path`: what a deployment ships."""
    return sum(
        tf.io.gfile.stat(os.path.join(folder, name)).length
        for folder, _, files in tf.io.gfile.walk(path)
        for name in files
    )


class _SavedModelRunner:
    """The export's serving signature in a session of its own."""

    def __init__(self, path, session_config):
        self._graph = tf.Graph()
        self._session = tf.compat.v1.Session(graph=self._graph, config=session_config)
        with self._graph.as_default():
            meta = tf.compat.v1.saved_model.loader.load(
                self._session, [tf.compat.v1.saved_model.tag_constants.SERVING], path
            )
        signature = meta.signature_def["serving_default"]
        self._input = signature.inputs[exports.INPUT_NAME].name
        self._outputs = [signature.outputs[name].name for name in ("class_indexes", "predictions")]

    def top_k(self, serialized):
        return self._session.run(self._outputs, {self._input: serialized})


class _LiteRTRunner:
    """TensorFlow's reader for the frames, the LiteRT interpreter for the model."""

    def __init__(self, path, threads):
        config = litert_model.read_config(path)
        self.model = litert_model.LiteRTModel(
            os.path.join(path, run_files.LITERT_MODEL_FILE), threads
        )
        self._graph = tf.Graph()
        with self._graph.as_default():
            self._serialized = tf.compat.v1.placeholder(tf.string, [None])
            batch = config.reader().prepare_serialized_examples(self._serialized)
            self._inputs = [batch[name] for name in litert_model.INPUTS]
        self._session = tf.compat.v1.Session(graph=self._graph)

    def top_k(self, serialized):
        frames, counts = self._session.run(self._inputs, {self._serialized: serialized})
        return litert_model.top_k(self.model.predict(frames, counts), TOP_K)


def labels_of(config, serialized):
    """[videos, classes] 0/1 labels of serialized records (the reader's parse)."""
    with tf.Graph().as_default():
        placeholder = tf.compat.v1.placeholder(tf.string, [None])
        labels = config.reader().prepare_serialized_examples(placeholder)["labels"]
        with tf.compat.v1.Session() as session:
            return session.run(labels, {placeholder: serialized})


def measure(kind, path, serialized, labels, batch_size, latency_videos, session_settings):
    """Figures of one export over the held records: videos/s in batches of
    `batch_size` (full batches, after one warm-up batch), latency per video
    one at a time over the first `latency_videos`, GAP of the top classes,
    those classes (for agreement) and the process's peak memory."""
    if kind == "saved_model":
        runner = _SavedModelRunner(path, session_settings.session_config())
    else:
        runner = _LiteRTRunner(path, session_settings.intra_op_threads)
    full = len(serialized) // batch_size * batch_size
    if not full:
        raise ValueError(f"fewer held videos ({len(serialized)}) than --batch_size={batch_size}")
    runner.top_k(serialized[:batch_size])
    indexes, scores = [], []
    start = time.perf_counter()
    for begin in range(0, full, batch_size):
        batch_indexes, batch_scores = runner.top_k(serialized[begin : begin + batch_size])
        indexes.append(batch_indexes)
        scores.append(batch_scores)
    elapsed = time.perf_counter() - start
    if full < len(serialized):  # the rest, for the GAP only
        batch_indexes, batch_scores = runner.top_k(serialized[full:])
        indexes.append(batch_indexes)
        scores.append(batch_scores)
    indexes, scores = np.concatenate(indexes), np.concatenate(scores)
    runner.top_k(serialized[:1])  # warm-up at batch 1
    latencies = []
    for record in serialized[:latency_videos]:
        begin = time.perf_counter()
        runner.top_k([record])
        latencies.append(time.perf_counter() - begin)
    dense = np.zeros(labels.shape, np.float32)
    np.put_along_axis(dense, indexes, scores, axis=1)
    figures = {
        "videos_per_s": full / elapsed,
        "latency_ms_batch_1": 1000 * statistics.median(latencies),
        "latency_ms_batch_1_p90": 1000 * float(np.percentile(latencies, 90)),
        "gap": float(eval_util.calculate_gap(dense, labels, TOP_K)),
        "peak_rss_mb": peak_resident_mb(),
        "top_classes": indexes.tolist(),
    }
    if kind == "litert":
        figures["litert_kernels"] = runner.model.delegate
    return figures


def agreement(reference, other):
    """The mean share of each video's top classes that two lists of them share."""
    shared = [len(set(a) & set(b)) / len(a) for a, b in zip(reference, other, strict=True)]
    return sum(shared) / len(shared)


_PER_PROCESS = ("devices", "gpus", "towers")  # the same in every child: once, at the top


def summary(figures, sizes):
    """The table: each variant beside the float32 SavedModel (and the teacher)."""
    reference = figures[REFERENCE]
    teacher = figures.get(TEACHER)
    table = {}
    for name, row in figures.items():
        row = {key: value for key, value in row.items() if key not in _PER_PROCESS}
        top = row.pop("top_classes")
        row["disk_bytes"] = sizes[name]
        if name != TEACHER:
            row["size_vs_float32"] = sizes[name] / sizes[REFERENCE]
            row["speed_vs_float32"] = row["videos_per_s"] / reference["videos_per_s"]
            row["top_20_agreement_with_float32"] = agreement(reference["top_classes"], top)
            row["gap_change_from_float32"] = row["gap"] - reference["gap"]
            if teacher:
                row["speed_vs_teacher"] = row["videos_per_s"] / teacher["videos_per_s"]
        table[name] = row
    return table
