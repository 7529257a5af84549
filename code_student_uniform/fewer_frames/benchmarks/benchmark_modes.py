"""Speed and cost figures, printed and written as JSON.

--what=reader: videos/s and CPU microseconds per video of the readers'
  decoding, full (every frame) vs. the student's frames only, over several
  passes of --data_pattern (the first not counted). The first pass reads the
  records (up to --held_videos of them) and holds them in memory, so the
  `*_decode_*` figures time decoding alone. The `*_pipeline_*` figures time
  the whole input pipeline, TFRecord files read in every pass, and
  `read_only_*` its reading and batching alone: the floor both share.
--what=train_step: seconds per parallel teacher+student training step at the
  model flags' size on synthetic input, its FLOP/s, and the FLOP/s of a plain
  tf.matmul of similar shape measured in the same run.
--what=models: teacher and student (each in a process of its own) at the model
  flags' size (by default the paper's: 1024 cells, every 10th frame, 4716
  classes): parameters, FLOPs per video, model-only videos/s on synthetic
  input, end-to-end evaluation videos/s reading --data_pattern, peak memory,
  and the teacher/student ratios; --precision and --xla apply to both models.
--what=deploy: the scored model of the run in --train_dir (its student unless
  --eval_model) exported as a SavedModel in float32, with XLA and in bfloat16,
  and as LiteRT float32, dynamic-range int8 and full-integer int8 (calibrated on
  the run's training data), each measured in a process of its own on the same
  --deploy_videos of --data_pattern (deployment.py): videos/s at --batch_size,
  latency per video at batch 1, peak memory, size on disk, GAP, top-20
  agreement with float32; and the run's teacher as a float32 SavedModel.

FLOPs are counted analytically (flops.py).
"""

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
from absl import flags, logging

import checkpoints
import command_line
import deployment
import exports
import flops
import litert_model
import memory
import model_graph
import readers
import run_config
import runtime
import towers
import training_graph

command_line.define(*command_line.RUN_TOPICS, "training", "precision", "checkpoint")

flags.DEFINE_enum(
    "what",
    "reader",
    ["reader", "train_step", "models", "one_model", "memory", "deploy", "one_deployment"],
    "What to measure (memory: computed, see memory.py).",
)
flags.DEFINE_enum("role", "teacher", ["teacher", "student"], "one_model: which model.")
flags.DEFINE_integer("model_batches", 3, "models: timed batches of each measurement.")
flags.DEFINE_string("output_json", "", "Write the figures to this JSON file.")
flags.DEFINE_list(
    "gpu_memory_gb",
    ["16", "24", "40", "80", "141"],
    "memory: device sizes (GiB) to fit a batch in.",
)
flags.DEFINE_string("data_pattern", "./yt8m/train*.tfrecord", "reader, models: TFRecords to read.")
flags.DEFINE_integer("passes", 20, "reader: passes over the files (the first is warm-up).")
flags.DEFINE_integer(
    "held_videos",
    2048,
    "reader: records held in memory for the *_decode figures (~700 MB at most).",
)
flags.DEFINE_integer("steps", 3, "train_step: timed steps (after one warm-up step).")
flags.DEFINE_integer("deploy_videos", 512, "deploy: videos of --data_pattern measured.")
flags.DEFINE_integer(
    "latency_videos", 64, "deploy: videos predicted one at a time for the latency."
)
flags.DEFINE_integer(
    "representative_batches",
    4,
    "deploy: batches of the run's training data the full-integer model calibrates on.",
)
flags.DEFINE_string("deployment", "", "one_deployment: the export to measure.")
flags.DEFINE_enum(
    "deployment_format", "saved_model", ["saved_model", "litert"], "one_deployment: its format."
)
flags.DEFINE_string("held_records", "", "one_deployment: the TFRecord file of the videos.")

FLAGS = flags.FLAGS


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


def _held_records_pipeline(reader, pattern, passes, batch_size):
    """Decoded batches of the first --held_videos records of `pattern`, read
    from the files in the first pass and served from memory in the others."""
    records = tf.data.TFRecordDataset(readers.match_files(pattern)).take(FLAGS.held_videos)
    batches = records.batch(batch_size).cache().repeat(passes)
    decoded = batches.map(
        tf.autograph.experimental.do_not_convert(reader.prepare_serialized_examples),
        num_parallel_calls=tf.data.AUTOTUNE,
    )
    return tf.compat.v1.data.make_one_shot_iterator(decoded.prefetch(tf.data.AUTOTUNE)).get_next()


def _decode_rate(reader, pattern, passes, batch_size, per_pass, in_memory=False):
    """(videos/s, process CPU microseconds per video, videos per epoch) of one
    pipeline over `passes` epochs of `per_pass` videos, timed after the first."""
    with tf.Graph().as_default():
        if in_memory:
            pipeline = _held_records_pipeline(reader, pattern, passes, batch_size)
        else:
            pipeline = readers.get_input_data_tensors(
                reader,
                pattern,
                batch_size=batch_size,
                num_epochs=passes,
                shuffle=False,
                num_readers=FLAGS.num_readers,
                num_parallel_calls=FLAGS.num_parallel_calls,
            )
        pipeline = pipeline["video_matrix"]
        # Fetch a scalar: the decoding runs in full, the copy out of TF is left out.
        checksum = tf.reduce_sum(pipeline[:, 0, 0])
        size = tf.shape(pipeline)[0]
        with tf.compat.v1.Session(
            config=command_line.session_settings().session_config()
        ) as session:
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


def bench_reader():
    config = command_line.requested_model().new_config(["student"])
    passes = max(FLAGS.passes, 2)
    num_videos = _count_records(FLAGS.data_pattern)
    figures = {}
    held = min(num_videos, FLAGS.held_videos)
    measurements = [("read_only", _RecordsOnly(), False)]
    for name, reader in (
        ("student", config.reader()),
        ("full", config.with_models(["teacher"]).reader()),
    ):
        # Decoding alone on records held in memory, then with the files read.
        measurements += [(f"{name}_decode", reader, True), (f"{name}_pipeline", reader, False)]
    for label, reader, in_memory in measurements:
        rate, cpu, per_pass = _decode_rate(
            reader,
            FLAGS.data_pattern,
            passes,
            FLAGS.batch_size,
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
        batch_size=FLAGS.batch_size,
        data_pattern=FLAGS.data_pattern,
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


def bench_train_step():
    config = command_line.requested_model().new_config(["teacher", "student"])
    settings = command_line.run_settings()
    batch_size = FLAGS.batch_size if FLAGS["batch_size"].present else 32
    settings = dataclasses.replace(
        settings, inputs=dataclasses.replace(settings.inputs, batch_size=batch_size)
    )
    training_settings = settings.training
    devices = towers.tower_devices(training_settings.num_gpu, training_settings.num_cpu_towers)
    towers.check_batch_size(batch_size, len(devices))
    session_config = settings.session.session_config(cpu_devices=training_settings.num_cpu_towers)
    with tf.Graph().as_default():
        graph = training_graph.build_training_graph(
            config, "parallel", _synthetic_batch(config, batch_size), settings, devices
        )
        with tf.compat.v1.Session(config=session_config) as session:
            session_devices = [device.name for device in session.list_devices()]
            session.run(tf.compat.v1.global_variables_initializer())
            logging.info("warm-up step")
            session.run(graph["train_op"])
            start = time.time()
            for step in range(FLAGS.steps):
                session.run(graph["train_op"])
                logging.info("timed step %d done", step + 1)
            step_seconds = (time.time() - start) / FLAGS.steps
            matmul_shape = run_config.model_class(config.model).reference_matmul(
                config.model_params, batch_size, config.max_num_frames, config.feature_sizes
            )
            matmul_rate = _matmul_rate(session, *matmul_shape)
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


def _scored(config, batch, role):
    """The predictions of `role`, in --precision, compiled with --xla."""
    outputs = model_graph.build_models(config, batch, precision=FLAGS.precision, xla=FLAGS.xla)
    return outputs[f"{role}_predictions"]


def bench_one_model():
    """Figures of one model (--role) of the models benchmark, in this process."""
    role = FLAGS.role
    config = command_line.requested_model().new_config(["teacher", "student"]).with_models([role])
    batch_size = FLAGS.batch_size
    student = role == "student"
    frames = config.selection().frame_budget if student else config.max_num_frames
    with tf.Graph().as_default():
        synthetic = _synthetic_batch(config, batch_size)
        synthetic["video_matrix"] = synthetic["video_matrix"][:, :frames]
        synthetic["num_frames"] = tf.minimum(synthetic["num_frames"], frames)
        predictions = _scored(config, synthetic, role)
        scope = run_config.scopes_of([role])[0]
        params = sum(
            int(np.prod(v.shape.as_list())) for v in tf.compat.v1.trainable_variables(scope + "/")
        )
        with tf.compat.v1.Session(
            config=command_line.session_settings().session_config()
        ) as session:
            session.run(tf.compat.v1.global_variables_initializer())
            session.run(tf.compat.v1.local_variables_initializer())  # weights' copies
            model_rate = _timed_rate(session, predictions, FLAGS.model_batches)
    with tf.Graph().as_default():
        batch = readers.get_input_data_tensors(
            config.reader(),
            FLAGS.data_pattern,
            batch_size=batch_size,
            num_epochs=None,
            shuffle=False,
            num_readers=FLAGS.num_readers,
        )
        predictions = _scored(config, batch, role)
        with tf.compat.v1.Session(
            config=command_line.session_settings().session_config()
        ) as session:
            session.run(tf.compat.v1.global_variables_initializer())
            session.run(tf.compat.v1.local_variables_initializer())  # weights' copies
            end_to_end_rate = _timed_rate(session, predictions, FLAGS.model_batches)
    return {
        "precision": FLAGS.precision,
        "xla": FLAGS.xla,
        "params": params,
        "flops_per_video": flops.flops_per_video(config, student),
        "frames_per_video": frames,
        "model_videos_per_s": model_rate,
        "end_to_end_videos_per_s": end_to_end_rate,
        "peak_rss_mb": deployment.peak_resident_mb(),
    }


def _passed_flags(*own):
    """This run's flags, for a child of it, less --what, --output_json and `own`."""
    return [
        arg
        for arg in sys.argv[1:]
        if not arg.startswith(("--what", "--output_json", *(f"--{name}" for name in own)))
    ]


def _child_figures(description, *flags_for_child):
    """The figures a child process of this binary writes (--output_json)."""
    with tempfile.TemporaryDirectory() as folder:
        output = os.path.join(folder, "figures.json")
        command = [sys.executable, os.path.abspath(__file__), *flags_for_child]
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
            raise runtime.UserError(f"measuring the {description} failed: {reason}")
        with open(output) as handle:
            return json.load(handle)


def bench_models():
    """Teacher and student, each measured by a child process of this binary."""
    passed = _passed_flags()
    if not FLAGS["num_classes"].present:
        passed.append("--num_classes=4716")  # the paper's (2017) vocabulary
    if not FLAGS["batch_size"].present:
        # At 64 the student's matmuls are large enough to run near the matmul rate.
        passed.append("--batch_size=64")
    readers.match_files(FLAGS.data_pattern)  # fail here, in one line, not in each child
    figures = {
        role: _child_figures(f"the {role}", "--what=one_model", f"--role={role}", *passed)
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


def bench_deploy():
    """The run's scored model (--train_dir, --eval_model) exported every way,
    each measured by a child process on the same --deploy_videos videos."""
    requested = command_line.requested_model()
    config, scored = checkpoints.scored_run(requested, FLAGS.train_dir)
    whole = checkpoints.existing_run(requested, FLAGS.train_dir)
    teacher = (
        whole.with_models(["teacher"])
        if "teacher" in whole.models and scored != "teacher"
        else None
    )
    held = deployment.records(readers.match_files(FLAGS.data_pattern), FLAGS.deploy_videos)
    calibration = exports.calibration_data_pattern(FLAGS.train_dir, "")
    passed = _passed_flags("deployment", "deployment_format", "held_records")
    figures, sizes = {}, {}
    with tempfile.TemporaryDirectory() as folder:
        held_path = os.path.join(folder, "held.tfrecord")
        deployment.write_records(held_path, held)
        representative = litert_model.representative_batches(
            config, calibration, FLAGS.representative_batches, FLAGS.batch_size
        )
        made = deployment.export_variants(
            config, FLAGS.train_dir, folder, representative, teacher, FLAGS.checkpoint_path
        )
        for name, (kind, path) in made.items():
            sizes[name] = deployment.disk_bytes(path)
            figures[name] = _child_figures(
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
        "batch_size": FLAGS.batch_size,
        "latency_videos": min(FLAGS.latency_videos, len(held)),
        "calibration_data": calibration,
        "variants": deployment.summary(figures, sizes),
    }


def bench_one_deployment():
    """Figures of one export of the deployment benchmark, in this process."""
    config, _ = checkpoints.scored_run(command_line.requested_model(), FLAGS.train_dir)
    held = deployment.records([FLAGS.held_records])
    return deployment.measure(
        FLAGS.deployment_format,
        FLAGS.deployment,
        held,
        deployment.labels_of(config, held),
        FLAGS.batch_size,
        FLAGS.latency_videos,
        command_line.session_settings(),
    )


def bench_memory():
    """Weights, activations per video and the largest batch per tower, computed."""
    config = command_line.requested_model().new_config(["teacher", "student"])
    sizes = [float(size) for size in FLAGS.gpu_memory_gb]
    return {
        "model": config.model,
        "lstm_cells": getattr(config.model_params, "lstm_cells", None),
        "parameters": memory.parameter_count(config),
        "weight_bytes": memory.weight_bytes(config),
        "activation_bytes_per_video": memory.activation_bytes_per_video(config),
        "reserved_share": memory.RESERVED_SHARE,
        "largest_batch_per_tower": {
            f"{size:g} GiB": memory.largest_batch(config, size * 2**30) for size in sizes
        },
        "memory_counted": "analytic (memory.py): float32 weights x4, kept activations",
    }


def main(argv):
    figures = {
        "reader": bench_reader,
        "train_step": bench_train_step,
        "models": bench_models,
        "one_model": bench_one_model,
        "deploy": bench_deploy,
        "one_deployment": bench_one_deployment,
        "memory": bench_memory,
    }[FLAGS.what]()
    figures.setdefault("towers", 1)
    figures["devices"] = [
        f"{device.device_type}:{name}"
        for device in tf.config.list_physical_devices()
        for name in [device.name.rsplit(":", 1)[-1]]
    ]
    gpus = tf.config.list_physical_devices("GPU")
    figures["gpus"] = [tf.config.experimental.get_device_details(gpu) for gpu in gpus]
    text = json.dumps(figures, indent=2, sort_keys=True)
    print(text)
    if FLAGS.output_json:
        runtime.write_json(FLAGS.output_json, figures)


if __name__ == "__main__":
    runtime.run(main)
