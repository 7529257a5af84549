"""The video paths as Apache Beam pipelines (--beam_pipeline_options): features
of video files (extract_features.py) and their classification by a run's model
(inference.py --input_videos_csv), on any Beam runner.

Each video goes through the in-process code (extraction.video_records, one
video at a time; for inference then batch_inference.RecordPredictor), in a DoFn
whose networks are loaded once per worker process and shared by its threads.
The listed videos are spread over workers (a reshuffle breaks fusion with the
list), and:
- extraction groups the records by output shard and writes each shard as the
  in-process path does (output_shards.write_shard: whole, with its receipt), so
  a re-run of the same command skips the shards already written, whichever
  path wrote them;
- inference gathers the rows and writes them in the list's order, as the
  in-process path does.
A video that cannot be used goes to the dead-letter CSV; the job still ends.
Counters in the namespace `videos` (Beam metrics): videos, failed,
frames_decoded, video_seconds, model_loads.
"""

import dataclasses
import os
import sys
import threading

from absl import logging

from fewer_frames.config import settings as settings_lib
from fewer_frames.features import extraction, model_files, output_shards
from fewer_frames.serving import batch_inference, video_inference
from fewer_frames.system.errors import UserError

BEAM_REQUIREMENTS = "requirements-beam.txt"

try:
    import apache_beam as beam
    from apache_beam.metrics.metric import Metrics, MetricsFilter
    from apache_beam.options.pipeline_options import PipelineOptions
except ImportError as error:
    raise UserError(
        f"--beam_pipeline_options needs Apache Beam: pip install -r {BEAM_REQUIREMENTS}"
    ) from error

NAMESPACE = "videos"
COUNTERS = ("videos", "failed", "frames_decoded", "video_seconds", "model_loads")

# What a worker process has loaded (networks, the run's model), by what loaded it:
# one copy per process whatever the number of DoFn instances and threads.
_LOADED = {}
_LOADING = threading.Lock()


def loaded_once_per_process(key, load):
    """`load()`'s value, computed once in this process for `key` (counted)."""
    with _LOADING:
        if key not in _LOADED:
            _LOADED[key] = load()
            Metrics.counter(NAMESPACE, "model_loads").inc()
        return _LOADED[key]


def pipeline_options(text):
    """PipelineOptions of comma-separated `key=value` pairs (TensorFlow Datasets'
    convention); a bare `key` is a flag that is set."""
    flags = []
    for pair in text.split(","):
        pair = pair.strip()
        if not pair:
            continue
        key, equals, value = pair.partition("=")
        if not key.strip() or (equals and not value.strip()):
            raise UserError(f"--beam_pipeline_options: {pair!r} is not key=value")
        flags.append(f"--{key.strip()}={value.strip()}" if equals else f"--{key.strip()}")
    options = PipelineOptions(flags)
    unknown = [flag for flag in flags if flag.split("=")[0][2:] not in options.get_all_options()]
    if unknown:
        raise UserError(f"--beam_pipeline_options: no such Beam option: {', '.join(unknown)}")
    return options


def _worker_settings(settings):
    """What a worker process runs with: the model files the binary made sure of
    (never a download at run time), and one TensorFlow thread unless set, since
    runners start a worker process per core."""
    return dataclasses.replace(
        settings,
        model_dir=os.path.expanduser(settings.model_dir),  # the binary's home, not a worker's
        download_models=False,
        feature_threads=settings.feature_threads or 1,
    )


def _models_in_place(settings):
    """The model files in --model_dir, downloaded there by the binary if allowed
    and missing, before any worker needs them."""
    model_files.ensure_model_files(
        os.path.expanduser(settings.model_dir),
        model_files.RGB_FILES + model_files.AUDIO_FILES,
        allow_download=settings.download_models,
        mirror=settings.model_download_mirror,
    )


def _local_workers_import_the_code():
    """The local runners' worker processes import this package as the binary does."""
    code = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    paths = [path for path in os.environ.get("PYTHONPATH", "").split(os.pathsep) if path]
    if code not in paths:
        os.environ["PYTHONPATH"] = os.pathsep.join([code, *paths])
    if code not in sys.path:
        sys.path.insert(0, code)


class ExtractVideo(beam.DoFn):
    """(key, video entry) -> (key, (entry, serialized record or None, error)).
    `model` (a ModelConfig) makes only the steps its student reads."""

    def __init__(self, settings, model=None):
        self.settings = _worker_settings(settings)
        self.model = model
        self.counters = {name: Metrics.counter(NAMESPACE, name) for name in COUNTERS[:4]}

    def _loaded(self):
        def load():
            wanted = video_inference.student_steps(self.model) if self.model else None
            return extraction.FeatureExtractor(self.settings), wanted

        return loaded_once_per_process(("features", repr(self.settings), repr(self.model)), load)

    def process(self, element):
        key, entry = element
        extractor, wanted_steps = self._loaded()
        report = extraction.ExtractionReport()
        for result in extraction.one_video_records(extractor, entry, report, wanted_steps):
            self.counters["videos"].inc()
            self.counters["failed"].inc(bool(result[2]))
            yield key, result
        self.counters["frames_decoded"].inc(report.frames_decoded)
        self.counters["video_seconds"].inc(round(report.video_seconds))


class WriteShard(beam.DoFn):
    """(shard index, results of its videos) -> the shard written whole, with its
    receipt (output_shards.write_shard); yields the shard's path."""

    def __init__(self, output_path, count, fingerprint):
        self.output_path, self.count, self.fingerprint = output_path, count, fingerprint

    def process(self, element):
        index, results = element
        results = sorted(results, key=lambda result: result[0].line)
        path = output_shards.shard_paths(self.output_path, self.count)[index]
        shard = output_shards.Shard(index, path, tuple(result[0] for result in results))
        output_shards.write_shard(self.output_path, self.fingerprint, shard, results)
        yield path


def _run(options, build):
    """Runs the pipeline that `build(pipeline)` makes with `options`; returns its
    counters."""
    _local_workers_import_the_code()
    pipeline = beam.Pipeline(options=options)
    build(pipeline)
    result = pipeline.run()
    result.wait_until_finish()
    counters = dict.fromkeys(COUNTERS, 0)
    query = result.metrics().query(MetricsFilter().with_namespace(NAMESPACE))
    for counter in query["counters"]:
        counters[counter.key.metric.name] += counter.committed or counter.attempted or 0
    logging.info(
        "Beam counters: %s", ", ".join(f"{name} {value}" for name, value in counters.items())
    )
    return counters


def run_extraction(entries, output_path, settings, videos_per_shard, pipeline_text):
    """extraction.extract's work as a Beam pipeline (same shards, same records,
    same receipts and dead-letter CSV); returns the ExtractionReport."""
    options = pipeline_options(pipeline_text)  # a wrong option is told before any work
    plan = output_shards.ShardPlan(
        output_path, entries, videos_per_shard, extraction.settings_fingerprint(settings)
    )
    earlier = plan.finished()
    todo = [
        (shard.index, entry)
        for shard in plan.shards
        if shard.index not in earlier
        for entry in shard.entries
    ]
    if earlier:
        logging.info(
            "Skipping %d of %d shards written by an earlier run", len(earlier), len(plan.shards)
        )
    counters = {}
    if todo:
        _models_in_place(settings)

        def build(pipeline):
            _ = (
                pipeline
                | "ListVideos" >> beam.Create(todo, reshuffle=False)
                | "SpreadVideos" >> beam.Reshuffle()
                | "ExtractFeatures" >> beam.ParDo(ExtractVideo(settings))
                | "GroupByShard" >> beam.GroupByKey()
                | "WriteShards"
                >> beam.ParDo(
                    WriteShard(output_path, len(plan.shards), plan.fingerprint),
                )
            )

        counters = _run(options, build)
    report = extraction.ExtractionReport()
    for index, failures in plan.finished().items():
        shard = plan.shards[index]
        videos = len(shard.entries) - len(failures)
        if index in earlier:
            report.skipped += videos
        else:
            report.written += videos
        report.failed += failures
        report.files.append(shard.path)
    report.frames_decoded = counters.get("frames_decoded", 0)
    report.video_seconds = counters.get("video_seconds", 0)
    dead_letter = output_shards.dead_letter_path(output_path)
    report.dead_letter = output_shards.write_dead_letter(dead_letter, report.failed) or ""
    logging.info(
        "Extracted %d videos on Beam into %d shards (%d skipped, %d failed)",
        report.written,
        len(plan.shards),
        report.skipped,
        len(report.failed),
    )
    return report


class PredictVideo(beam.DoFn):
    """(key, (entry, record, error)) -> (key, (entry, (id, indexes, scores) or
    None, error)) with the run's model, restored once per worker process."""

    def __init__(self, config, train_dir, top_k, checkpoint_path, precision, threads):
        self.arguments = (config, train_dir, top_k, checkpoint_path, precision, threads)

    def _predictor(self):
        config, train_dir, top_k, checkpoint_path, precision, threads = self.arguments
        session = settings_lib.SessionSettings(intra_op_threads=threads, inter_op_threads=threads)
        return loaded_once_per_process(
            ("model", repr(self.arguments)),
            lambda: batch_inference.RecordPredictor(
                config, train_dir, top_k, session, checkpoint_path, precision
            ),
        )

    def process(self, element):
        key, (entry, record, error) = element
        if error:
            yield key, (entry, None, error)
            return
        ids, indexes, scores = self._predictor().predict([record])
        yield key, (entry, (ids[0], indexes[0], scores[0]), "")


class WritePredictions(beam.DoFn):
    """All the videos' results -> the predictions CSV (and the named JSON lines)
    in the list's order, as the in-process path writes them, and the dead-letter
    CSV of the failures (none: an earlier one removed)."""

    def __init__(self, output_file, names, named_output_file, dead_letter):
        self.output_file, self.names = output_file, names
        self.named_output_file, self.dead_letter = named_output_file, dead_letter

    def process(self, results):
        results = sorted(results, key=lambda result: result[0].line)
        rows = (([row[0]], [row[1]], [row[2]]) for _, row, error in results if not error)
        batch_inference.write_predictions(
            self.output_file, rows, self.names, self.named_output_file
        )
        failures = [(entry, error) for entry, _, error in results if error]
        output_shards.write_dead_letter(self.dead_letter, failures)
        yield len(failures)


def run_inference(entries, settings, model, prediction, pipeline_text):
    """inference.py on video files as a Beam pipeline. `model`: the ModelConfig
    of the scored run; `prediction`: a dict of train_dir, top_k, checkpoint_path,
    precision, output_file, names, named_output_file, dead_letter. Returns the
    pipeline's counters (`videos`, `failed`, ...)."""
    options = pipeline_options(pipeline_text)  # a wrong option is told before any work
    threads = _worker_settings(settings).feature_threads
    _models_in_place(settings)

    def build(pipeline):
        _ = (
            pipeline
            | "ListVideos" >> beam.Create([(entry.line, entry) for entry in entries])
            | "SpreadVideos" >> beam.Reshuffle()
            | "ExtractFeatures" >> beam.ParDo(ExtractVideo(settings, model))
            | "Predict"
            >> beam.ParDo(
                PredictVideo(
                    model,
                    prediction["train_dir"],
                    prediction["top_k"],
                    prediction["checkpoint_path"],
                    prediction["precision"],
                    threads,
                )
            )
            | "Gather" >> beam.Values()
            | "AllVideos" >> beam.combiners.ToList()
            | "WritePredictions"
            >> beam.ParDo(
                WritePredictions(
                    prediction["output_file"],
                    prediction["names"],
                    prediction["named_output_file"],
                    prediction["dead_letter"],
                )
            )
        )

    return _run(options, build)
