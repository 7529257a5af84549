"""The measurements of benchmark.py, one function per --what, each returning its
figures as a dict (the binary prints them as JSON). They take a BenchmarkOptions;
the models and deploy modes measure each model in a child process of the binary.
FLOPs are counted analytically (models/flops.py), memory computed
(models/memory_estimate.py)."""

import dataclasses
import json
import os
import resource
import subprocess
import sys
import tempfile
import time

import numpy as np
import tensorflow as tf
from absl import logging

from fewer_frames.benchmarks import deploy_benchmark
from fewer_frames.config import settings
from fewer_frames.config.settings import PRECISIONS
from fewer_frames.inputs import readers
from fewer_frames.models import flops, memory_estimate, model_config, model_graph
from fewer_frames.run_dirs import run_directory
from fewer_frames.serving import exports, litert_model
from fewer_frames.system.errors import UserError
from fewer_frames.training import towers, training_graph


@dataclasses.dataclass(frozen=True)
class BenchmarkOptions:
    """What benchmark.py measures and how (its flags, read once by the binary)."""

    requested: model_config.RequestedModel
    session: settings.SessionSettings
    run: settings.RunSettings
    binary: str  # benchmark.py, which the models and deploy modes start again per child
    args: tuple = ()  # the command line's arguments, passed on to the children
    given: frozenset = frozenset()  # the flags given on the command line
    role: str = "teacher"
    model_batches: int = 3
    gpu_memory_gb: tuple = ("16", "24", "40", "80", "141")
    data_pattern: str = "./yt8m/train*.tfrecord"
    passes: int = 20
    held_videos: int = 2048
    steps: int = 3
    deploy_videos: int = 512
    latency_videos: int = 64
    representative_batches: int = 4
    deployment: str = ""
    deployment_format: str = "saved_model"
    held_records: str = ""
    train_dir: str = settings.TRAIN_DIR
    checkpoint_path: str = ""
    precision: str = "float32"
    xla: bool = False
    feature_model_dir: str = ""
    feature_network: str = "inception_v3"
    vggish_size: str = "real"
    frame_shift_seeds: int = 3
    feature_videos: int = 2
    feature_video_seconds: float = 60.0
    video_width: int = 1280
    video_height: int = 720
    video_frames_per_second: int = 30
    keyframe_seconds: float = 2.0
    frames_per_batch: int = settings.ExtractionSettings.frames_per_batch
    video_seconds: float = 300.0
    video_keyframe_intervals: tuple = ("1", "2", "5", "10")
    videos_per_path: int = 4
    metrics_videos: int = 200_000
    scale_fractions: tuple = ("0.0005", "0.001")
    scale_frames: tuple = ("128", "300")
    scale_stages: tuple = ("startup", "evaluation", "inference")
    storage_latency_ms: float = 30.0
    storage_bandwidth_mb_s: float = 200.0

    @property
    def batch_size(self):
        return self.run.inputs.batch_size


def _count_records(pattern):
    with tf.Graph().as_default():
        files = readers.match_files(pattern)
        count = tf.data.TFRecordDataset(files).reduce(np.int64(0), lambda total, _: total + 1)
        with tf.compat.v1.Session() as session:
            return int(session.run(count))


class _RecordsOnly:
    """A reader that leaves the records unparsed: the pipeline's reading cost alone."""

    def prepare_serialized_examples(self, serialized_batch, example_names=None):
        return {"video_matrix": tf.strings.length(serialized_batch)[:, None, None]}


def _cpu_seconds():
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _held_records_pipeline(options, reader, pattern, passes, batch_size):
    """Decoded batches of the first --held_videos records of `pattern`, read
    from the files in the first pass and served from memory in the others."""
    records = tf.data.TFRecordDataset(readers.match_files(pattern)).take(options.held_videos)
    batches = records.batch(batch_size).cache().repeat(passes)
    decoded = batches.map(
        tf.autograph.experimental.do_not_convert(reader.prepare_serialized_examples),
        num_parallel_calls=tf.data.AUTOTUNE,
    )
    return tf.compat.v1.data.make_one_shot_iterator(decoded.prefetch(tf.data.AUTOTUNE)).get_next()


def _decode_rate(options, reader, pattern, passes, batch_size, per_pass, in_memory=False):
    """(videos/s, process CPU microseconds per video, videos per epoch) of one
    pipeline over `passes` epochs of `per_pass` videos, timed after the first."""
    with tf.Graph().as_default():
        if in_memory:
            pipeline = _held_records_pipeline(options, reader, pattern, passes, batch_size)
        else:
            pipeline = readers.get_input_data_tensors(
                reader,
                pattern,
                batch_size=batch_size,
                num_epochs=passes,
                shuffle=False,
                num_readers=options.run.inputs.num_readers,
                num_parallel_calls=options.run.inputs.num_parallel_calls,
            )
        pipeline = pipeline["video_matrix"]
        # Fetch a scalar: the decoding runs in full, the copy out of TF is left out.
        checksum = tf.reduce_sum(pipeline[:, 0, 0])
        size = tf.shape(pipeline)[0]
        with tf.compat.v1.Session(config=options.session.session_config()) as session:
            videos, timed, start, start_cpu = 0, 0, None, None
            while True:
                try:
                    count, _ = session.run([size, checksum])
                except tf.errors.OutOfRangeError:
                    break
                videos += count
                if start is not None:
                    timed += count
                elif videos >= per_pass:
                    start, start_cpu = time.time(), _cpu_seconds()
            rate = timed / (time.time() - start)
            return rate, 1e6 * (_cpu_seconds() - start_cpu) / timed, int(videos) // passes


def bench_reader(options):
    config = options.requested.new_config(["student"])
    passes = max(options.passes, 2)
    num_videos = _count_records(options.data_pattern)
    figures = {}
    held = min(num_videos, options.held_videos)
    measurements = [("read_only", _RecordsOnly(), False)]
    for name, reader in (
        ("student", config.reader()),
        ("full", config.with_models(["teacher"]).reader()),
    ):
        # Decoding alone on records held in memory, then with the files read.
        measurements += [(f"{name}_decode", reader, True), (f"{name}_pipeline", reader, False)]
    for label, reader, in_memory in measurements:
        rate, cpu, per_pass = _decode_rate(
            options,
            reader,
            options.data_pattern,
            passes,
            options.batch_size,
            held if in_memory else num_videos,
            in_memory,
        )
        figures[f"{label}_videos_per_s"] = rate
        figures[f"{label}_cpu_us_per_video"] = cpu
        if in_memory:
            figures["held_videos"] = per_pass
    for kind, suffix in (("decode", ""), ("pipeline", "_pipeline")):
        student, full = f"student_{kind}", f"full_{kind}"
        figures[f"student_to_full{suffix}_ratio"] = (
            figures[f"{student}_videos_per_s"] / figures[f"{full}_videos_per_s"]
        )
        figures[f"student_to_full{suffix}_cpu_ratio"] = (
            figures[f"{full}_cpu_us_per_video"] / figures[f"{student}_cpu_us_per_video"]
        )
    for name in ("student", "full"):  # the share of the floor each pipeline reaches
        figures[f"{name}_pipeline_to_floor"] = (
            figures[f"{name}_pipeline_videos_per_s"] / figures["read_only_videos_per_s"]
        )
    return dict(
        figures,
        num_videos=num_videos,
        student_frames=config.selection().frame_budget,
        passes_counted=passes - 1,
        batch_size=options.batch_size,
        data_pattern=options.data_pattern,
    )


def _synthetic_batch(config, batch_size):
    rng = np.random.default_rng(0)
    width = sum(config.feature_sizes)
    frames = rng.uniform(-1, 1, (batch_size, config.max_num_frames, width)).astype(np.float32)
    labels = rng.random((batch_size, config.num_classes)) < 3 / config.num_classes
    return {
        "video_ids": tf.constant([b"v"] * batch_size),
        "video_matrix": tf.Variable(frames, trainable=False, name="bench_frames"),
        "labels": tf.constant(labels.astype(np.float32)),
        "num_frames": tf.constant(np.full(batch_size, config.max_num_frames, np.int32)),
    }


def _matmul_rate(session, rows, inner, columns, repeats=10):
    with tf.compat.v1.variable_scope("bench_matmul"):
        left = tf.Variable(tf.random.uniform([rows, inner]), trainable=False)
        right = tf.Variable(tf.random.uniform([inner, columns]), trainable=False)
        product = tf.reduce_sum(tf.matmul(left, right))
    session.run([left.initializer, right.initializer])
    session.run(product)
    start = time.time()
    for _ in range(repeats):
        session.run(product)
    return 2 * rows * inner * columns * repeats / (time.time() - start)


def bench_train_step(options):
    config = options.requested.new_config(["teacher", "student"])
    settings = options.run
    batch_size = options.batch_size if "batch_size" in options.given else 32
    settings = dataclasses.replace(
        settings, inputs=dataclasses.replace(settings.inputs, batch_size=batch_size)
    )
    training_settings = settings.training
    devices = towers.tower_devices(training_settings.num_gpu, training_settings.num_cpu_towers)
    towers.check_batch_size(batch_size, len(devices))
    session_config = settings.session.session_config(cpu_devices=training_settings.num_cpu_towers)
    seconds = {}
    for precision in PRECISIONS:  # both, each in a graph of its own
        precise = dataclasses.replace(
            settings, training=dataclasses.replace(training_settings, precision=precision)
        )
        with tf.Graph().as_default():
            graph = training_graph.build_training_graph(
                config, "parallel", _synthetic_batch(config, batch_size), precise, devices
            )
            with tf.compat.v1.Session(config=session_config) as session:
                session_devices = [device.name for device in session.list_devices()]
                session.run(tf.compat.v1.global_variables_initializer())
                logging.info("%s: warm-up step", precision)
                session.run(graph["train_op"])
                start = time.time()
                for step in range(options.steps):
                    session.run(graph["train_op"])
                    logging.info("%s: timed step %d done", precision, step + 1)
                seconds[precision] = (time.time() - start) / options.steps
                matmul_shape = model_config.model_class(config.model).reference_matmul(
                    config.model_params, batch_size, config.max_num_frames, config.feature_sizes
                )
                if precision == "float32":
                    matmul_rate = _matmul_rate(session, *matmul_shape)
    step_seconds = seconds[training_settings.precision]
    step_flops = (
        flops.TRAIN_STEP_PASSES
        * batch_size
        * (
            flops.flops_per_video(config, student=False)
            + flops.flops_per_video(config, student=True)
        )
    )
    return {
        "model": config.model,
        "step_seconds": step_seconds,
        "precision": training_settings.precision,
        **{f"{precision}_steps_per_second": 1 / value for precision, value in seconds.items()},
        "bfloat16_speedup": seconds["float32"] / seconds["bfloat16"],
        "train_flops_per_step": step_flops,
        "train_flops_per_s": step_flops / step_seconds,
        "matmul_flops_per_s": matmul_rate,
        "matmul_shape": list(matmul_shape),
        "ratio_to_matmul": step_flops / step_seconds / matmul_rate,
        "batch_size": batch_size,
        "lstm_cells": getattr(config.model_params, "lstm_cells", None),
        "flops_counted": "analytic (matmuls; training = 3 x forward)",
        "fold_chunks": getattr(config.model_params, "fold_chunks", None),
        "towers": len(devices),
        "tower_devices": [device or "default" for device in devices],
        "session_devices": session_devices,
    }


def _timed_rate(session, fetch, batches):
    """Videos/s over `batches` runs of `fetch` after one warm-up run."""
    session.run(fetch)
    videos, start = 0, time.time()
    for _ in range(batches):
        result = session.run(fetch)
        videos += len(result)
    return videos / (time.time() - start)


def _scored(options, config, batch, role):
    """The predictions of `role`, in --precision, compiled with --xla."""
    outputs = model_graph.build_models(config, batch, precision=options.precision, xla=options.xla)
    return outputs[f"{role}_predictions"]


def bench_one_model(options):
    """Figures of one model (--role) of the models benchmark, in this process."""
    role = options.role
    config = options.requested.new_config(["teacher", "student"]).with_models([role])
    batch_size = options.batch_size
    student = role == "student"
    frames = config.selection().frame_budget if student else config.max_num_frames
    with tf.Graph().as_default():
        synthetic = _synthetic_batch(config, batch_size)
        synthetic["video_matrix"] = synthetic["video_matrix"][:, :frames]
        synthetic["num_frames"] = tf.minimum(synthetic["num_frames"], frames)
        predictions = _scored(options, config, synthetic, role)
        scope = model_config.scopes_of([role])[0]
        params = sum(
            int(np.prod(v.shape.as_list())) for v in tf.compat.v1.trainable_variables(scope + "/")
        )
        with tf.compat.v1.Session(config=options.session.session_config()) as session:
            session.run(tf.compat.v1.global_variables_initializer())
            session.run(tf.compat.v1.local_variables_initializer())  # weights' copies
            model_rate = _timed_rate(session, predictions, options.model_batches)
    with tf.Graph().as_default():
        batch = readers.get_input_data_tensors(
            config.reader(),
            options.data_pattern,
            batch_size=batch_size,
            num_epochs=None,
            shuffle=False,
            num_readers=options.run.inputs.num_readers,
        )
        predictions = _scored(options, config, batch, role)
        with tf.compat.v1.Session(config=options.session.session_config()) as session:
            session.run(tf.compat.v1.global_variables_initializer())
            session.run(tf.compat.v1.local_variables_initializer())  # weights' copies
            end_to_end_rate = _timed_rate(session, predictions, options.model_batches)
    return {
        "precision": options.precision,
        "xla": options.xla,
        "params": params,
        "flops_per_video": flops.flops_per_video(config, student),
        "frames_per_video": frames,
        "model_videos_per_s": model_rate,
        "end_to_end_videos_per_s": end_to_end_rate,
        "peak_rss_mb": deploy_benchmark.peak_resident_mb(),
    }


def _passed_flags(options, *own):
    """This run's flags, for a child of it, less --what, --output_json and `own`."""
    return [
        arg
        for arg in options.args
        if not arg.startswith(("--what", "--output_json", *(f"--{name}" for name in own)))
    ]


def _child_figures(options, description, *flags_for_child):
    """The figures a child process of this binary writes (--output_json)."""
    with tempfile.TemporaryDirectory() as folder:
        output = os.path.join(folder, "figures.json")
        command = [sys.executable, options.binary, *flags_for_child]
        command.append(f"--output_json={output}")
        logging.info("measuring the %s", description)
        child = subprocess.run(
            command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
        )
        if child.returncode:
            errors = [line for line in child.stderr.splitlines() if line.startswith("ERROR:")]
            if not errors:  # not a user error: show the child's traceback
                sys.stderr.write(child.stderr)
            reason = errors[-1].removeprefix("ERROR: ") if errors else "see the traceback above"
            raise UserError(f"measuring the {description} failed: {reason}")
        with open(output) as handle:
            return json.load(handle)


def bench_models(options):
    """Teacher and student, each measured by a child process of this binary."""
    passed = _passed_flags(options)
    if "num_classes" not in options.given:
        passed.append("--num_classes=4716")  # the paper's (2017) vocabulary
    if "batch_size" not in options.given:
        # At 64 the student's matmuls are large enough to run near the matmul rate.
        passed.append("--batch_size=64")
    readers.match_files(options.data_pattern)  # fail here, in one line, not in each child
    figures = {
        role: _child_figures(options, f"the {role}", "--what=one_model", f"--role={role}", *passed)
        for role in ("teacher", "student")
    }
    teacher, student = figures["teacher"], figures["student"]
    figures["ratios"] = {
        "flops": teacher["flops_per_video"] / student["flops_per_video"],
        "params": teacher["params"] / student["params"],
        "model_throughput": student["model_videos_per_s"] / teacher["model_videos_per_s"],
        "end_to_end_throughput": student["end_to_end_videos_per_s"]
        / teacher["end_to_end_videos_per_s"],
    }
    figures["flops_counted"] = "analytic (matmuls, forward pass)"
    return figures


def bench_deploy(options):
    """The run's scored model (--train_dir, --eval_model) exported every way,
    each measured by a child process on the same --deploy_videos videos."""
    requested = options.requested
    config, scored = run_directory.scored_run(requested, options.train_dir)
    whole = run_directory.existing_run(requested, options.train_dir)
    teacher = (
        whole.with_models(["teacher"])
        if "teacher" in whole.models and scored != "teacher"
        else None
    )
    held = deploy_benchmark.records(
        readers.match_files(options.data_pattern), options.deploy_videos
    )
    calibration = exports.calibration_data_pattern(options.train_dir, "")
    passed = _passed_flags(options, "deployment", "deployment_format", "held_records")
    figures, sizes = {}, {}
    with tempfile.TemporaryDirectory() as folder:
        held_path = os.path.join(folder, "held.tfrecord")
        deploy_benchmark.write_records(held_path, held)
        representative = litert_model.representative_batches(
            config, calibration, options.representative_batches, options.batch_size
        )
        made = deploy_benchmark.export_variants(
            config, options.train_dir, folder, representative, teacher, options.checkpoint_path
        )
        for name, (kind, path) in made.items():
            sizes[name] = deploy_benchmark.disk_bytes(path)
            figures[name] = _child_figures(
                options,
                name,
                "--what=one_deployment",
                f"--deployment={path}",
                f"--deployment_format={kind}",
                f"--held_records={held_path}",
                *passed,
            )
    return {
        "model": config.model,
        "scored": scored,
        "videos": len(held),
        "batch_size": options.batch_size,
        "latency_videos": min(options.latency_videos, len(held)),
        "calibration_data": calibration,
        "variants": deploy_benchmark.summary(figures, sizes),
    }


def bench_one_deployment(options):
    """Figures of one export of the deployment benchmark, in this process."""
    config, _ = run_directory.scored_run(options.requested, options.train_dir)
    held = deploy_benchmark.records([options.held_records])
    return deploy_benchmark.measure(
        options.deployment_format,
        options.deployment,
        held,
        deploy_benchmark.labels_of(config, held),
        options.batch_size,
        options.latency_videos,
        options.session,
    )


def bench_memory(options):
    """Weights, activations per video and the largest batch per tower, computed."""
    config = options.requested.new_config(["teacher", "student"])
    sizes = [float(size) for size in options.gpu_memory_gb]
    return {
        "model": config.model,
        "lstm_cells": getattr(config.model_params, "lstm_cells", None),
        "parameters": memory_estimate.parameter_count(config),
        "weight_bytes": memory_estimate.weight_bytes(config),
        "activation_bytes_per_video": memory_estimate.activation_bytes_per_video(config),
        "reserved_share": memory_estimate.RESERVED_SHARE,
        "largest_batch_per_tower": {
            f"{size:g} GiB": memory_estimate.largest_batch(config, size * 2**30) for size in sizes
        },
        "memory_counted": "analytic (memory_estimate.py): float32 weights x4, kept activations",
    }
