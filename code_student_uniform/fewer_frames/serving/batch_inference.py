"""Predictions of a data pattern's videos written as they are made (inference.py):
the Kaggle CSV from a run or a LiteRT export, the named JSON lines, and the
Segments submission from bounded per-class top-K lists."""

import contextlib
import dataclasses
import time

import tensorflow as tf
from absl import logging

from fewer_frames.config import settings
from fewer_frames.evaluation import segment_metrics
from fewer_frames.inputs import prediction_files, readers
from fewer_frames.models import model_graph
from fewer_frames.run_dirs import checkpoints, run_files
from fewer_frames.serving import litert_model
from fewer_frames.system import filesystem

# The name of the serialized records' input, in the SavedModel's signature too.
INPUT_NAME = "input_batch_unparsed"


def serialized_top_k(config, top_k, precision="float32", xla=False):
    """In the default graph: a placeholder of serialized records and the only
    model's (video ids, top-k class indexes, scores) of them."""
    serialized = tf.compat.v1.placeholder(tf.string, [None], name=INPUT_NAME)
    batch = config.reader().prepare_serialized_examples(serialized)
    return serialized, model_graph.top_k_predictions(config, batch, top_k, precision, xla)


class RecordPredictor:
    """The only model of `config` (the run in `train_dir`, as `run_inference`
    restores it) on serialized records: built and restored once, then `predict`
    for any number of batches, from any thread."""

    def __init__(
        self, config, train_dir, top_k, session_settings, checkpoint_path="", precision="float32"
    ):
        top_k = min(settings.checked_top_k(top_k), config.num_classes)
        self.graph = tf.Graph()
        with self.graph.as_default():
            self.serialized, self.outputs = serialized_top_k(
                config, top_k, precision, session_settings.xla
            )
            self.session = tf.compat.v1.Session(config=session_settings.session_config())
            self.checkpoint = checkpoints.restore_latest(
                self.session, train_dir, config.models, checkpoint_path
            )
        self.graph.finalize()

    def predict(self, records):
        """(video ids, top-k class indexes, scores) of serialized records."""
        return self.session.run(self.outputs, {self.serialized: records})


def named_output_path(output_file):
    stem = output_file[: -len(".csv")] if output_file.endswith(".csv") else output_file
    return stem + ".jsonl"


def write_predictions(output_file, batches, names=None, named_output_file="", streaming=False):
    """Writes `batches` of (video ids, top-k class indexes, scores) as the CSV,
    and with `names` ({class: name}) the readable `named_output_file`, each
    under a temporary name until the last row; `streaming`: in place instead,
    flushed after each batch, for a reader that follows them. Returns the
    videos written."""
    videos = 0

    def opened(outputs, path):
        if not streaming:
            path = outputs.enter_context(filesystem.atomic_output(path))
        return outputs.enter_context(tf.io.gfile.GFile(path, "w"))

    with contextlib.ExitStack() as outputs:
        stream = opened(outputs, output_file)
        named = opened(outputs, named_output_file) if names is not None else None
        stream.write(prediction_files.HEADER + "\n")
        if streaming:
            stream.flush()
        for ids, indexes, scores in batches:
            stream.write("".join(map(prediction_files.format_row, ids, indexes, scores)))
            if named is not None:
                rows = zip(ids, indexes, scores, strict=True)
                named.write("".join(prediction_files.format_named_row(*row, names) for row in rows))
            if streaming:
                stream.flush()
                if named is not None:
                    named.flush()
            videos += len(ids)
    return videos


def run_inference(
    config,
    train_dir,
    data_pattern,
    output_file,
    top_k,
    inputs=None,
    session_settings=None,
    checkpoint_path="",
    names=None,
    named_output_file="",
    precision="float32",
    timing=None,
):
    """Writes the predictions of the only model of `config` (the run in
    `train_dir`; its latest readable checkpoint, or `checkpoint_path`); with
    `names` ({class: name}), also the readable `named_output_file`. `timing`, a
    dict, gets the seconds of building and restoring (`setup`) and of predicting."""
    timing = {} if timing is None else timing
    inputs = inputs or settings.EVALUATION_INPUT
    session_settings = session_settings or settings.SessionSettings()
    top_k = min(settings.checked_top_k(top_k), config.num_classes)
    reader = config.reader(segment_size=inputs.segments())
    restored = []

    def batches():
        started = time.perf_counter()
        with tf.Graph().as_default():
            batch = readers.input_tensors(inputs, reader, data_pattern, num_epochs=1, shuffle=False)
            fetches = model_graph.top_k_predictions(
                config, batch, top_k, precision, session_settings.xla
            )
            with tf.compat.v1.Session(config=session_settings.session_config()) as session:
                restored.append(
                    checkpoints.restore_latest(session, train_dir, config.models, checkpoint_path)
                )
                timing["setup"] = time.perf_counter() - started
                yield from readers.run_to_end(session, fetches, reader, data_pattern)
                timing["predicting"] = time.perf_counter() - started - timing["setup"]

    videos = write_predictions(output_file, batches(), names, named_output_file)
    logging.info(
        "Wrote the top %d labels of %d videos (%s of %s) to %s",
        top_k,
        videos,
        config.models[0],
        restored[0],
        output_file,
    )
    return videos


def run_litert_inference(
    export_dir,
    data_pattern,
    output_file,
    top_k,
    inputs=None,
    threads=0,
    names=None,
    named_output_file="",
    timing=None,
):
    """Writes the predictions of the LiteRT export in `export_dir`
    (export_model.py --format=litert) like `run_inference`: TensorFlow's reader
    decodes the frames the model takes, the LiteRT interpreter scores them.
    `timing` as `run_inference`'s, and the interpreter's `kernels`."""
    timing = {} if timing is None else timing
    started = time.perf_counter()
    inputs = inputs or settings.EVALUATION_INPUT
    config = litert_model.read_config(export_dir)
    model = litert_model.LiteRTModel(f"{export_dir}/{run_files.LITERT_MODEL_FILE}", threads)
    timing["kernels"] = f"LiteRT {model.delegate}"
    top_k = min(settings.checked_top_k(top_k), config.num_classes)
    reader = config.reader()

    def batches():
        with tf.Graph().as_default():
            batch = readers.input_tensors(inputs, reader, data_pattern, num_epochs=1, shuffle=False)
            fetches = [batch["video_ids"], *(batch[name] for name in litert_model.INPUTS)]
            with tf.compat.v1.Session() as session:
                timing["setup"] = time.perf_counter() - started
                for ids, *model_inputs in readers.run_to_end(
                    session, fetches, reader, data_pattern
                ):
                    yield ids, *litert_model.top_k(model.predict(*model_inputs), top_k)
                timing["predicting"] = time.perf_counter() - started - timing["setup"]

    videos = write_predictions(output_file, batches(), names, named_output_file)
    logging.info(
        "Wrote the top %d labels of %d videos (LiteRT model %s, %s kernels) to %s",
        top_k,
        videos,
        export_dir,
        model.delegate,
        output_file,
    )
    return videos


def run_segment_inference(
    config,
    train_dir,
    data_pattern,
    output_file,
    classes,
    top_k=segment_metrics.DEFAULT_K,
    inputs=None,
    session_settings=None,
    checkpoint_path="",
    precision="float32",
):
    """Writes the Segments submission of the only model of `config` for the rated
    segments of `data_pattern`: per class of `classes`, its `top_k` segments."""
    inputs = inputs or dataclasses.replace(settings.EVALUATION_INPUT, segment_labels=True)
    session_settings = session_settings or settings.SessionSettings()
    reader = config.reader(segment_size=inputs.segments())
    ranked = segment_metrics.TopSegments(classes, top_k)
    with tf.Graph().as_default():
        batch = readers.input_tensors(inputs, reader, data_pattern, num_epochs=1, shuffle=False)
        fetches = model_graph.predictions(config, batch, precision, session_settings.xla)
        with tf.compat.v1.Session(config=session_settings.session_config()) as session:
            checkpoint = checkpoints.restore_latest(
                session, train_dir, config.models, checkpoint_path
            )
            for ids, scores in readers.run_to_end(session, fetches, reader, data_pattern):
                ranked.add(ids, scores)
    with (
        filesystem.atomic_output(output_file) as temporary,
        tf.io.gfile.GFile(temporary, "w") as stream,
    ):
        stream.write(segment_metrics.SUBMISSION_HEADER + "\n")
        for c, segments in ranked.lists().items():
            stream.write(f"{c}," + " ".join(segment for segment, _ in segments) + "\n")
    logging.info(
        "Wrote the top %d of %d segments per class for %d classes (%s of %s) to %s",
        top_k,
        ranked.seen,
        len(classes),
        config.models[0],
        checkpoint,
        output_file,
    )
    return ranked.seen
