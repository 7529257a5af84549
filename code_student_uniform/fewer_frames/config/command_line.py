"""The binaries' shared flags, by topic, and their reading into typed settings.

A binary calls `define(...)` with the topics it takes, at import, next to its
own flags; after parsing, its `main` turns them into the settings the library
takes (`requested_model`, `input_settings`, `training_settings`, ...). No other
module reads flags. Defaults are not written here: each flag takes the default
of the setting it fills (a dataclass field, or a field of a model's `Params`), and
has its name.
"""

import dataclasses

from absl import flags

from fewer_frames.config import settings
from fewer_frames.inputs import frame_selection, yt8m_format
from fewer_frames.models import model_config

FLAGS = flags.FLAGS

# Defaults of the settings the flags fill.
_MODEL = model_config.ModelConfig(models=[])
_INPUT = settings.InputSettings()
_TRAINING = settings.TrainingSettings()
_DISTILLATION = settings.DistillationSettings()
_EVALUATION = settings.EvaluationSettings()
_SESSION = settings.SessionSettings()
_EXTRACTION = settings.ExtractionSettings(_MODEL.dataset_version)


def _define_runtime():
    flags.DEFINE_integer(
        "intra_op_threads",
        _SESSION.intra_op_threads,
        "Threads inside one op (0: TensorFlow's choice).",
    )
    flags.DEFINE_integer(
        "inter_op_threads",
        _SESSION.inter_op_threads,
        "Ops run in parallel (0: TensorFlow's choice).",
    )
    flags.DEFINE_bool(
        "gpu_memory_growth",
        _SESSION.gpu_memory_growth,
        "Take GPU memory as needed (--nogpu_memory_growth: all of it at the start).",
    )
    flags.DEFINE_bool(
        "xla",
        _SESSION.xla,
        "Compile the graph's clusters with XLA (auto-clustering; on the CPU too): the LSTM's "
        "element-wise ops fuse. The same outputs to float32 rounding.",
    )


def _define_graph_optimizer():
    flags.DEFINE_bool(
        "grappler",
        _SESSION.grappler,
        "Let TensorFlow's graph optimizer (Grappler) rewrite each graph before its first run, "
        "as TensorFlow does by default. Off: it costs about 2 s per training graph and per "
        "Inception-v3 on a CPU, and made no step faster here (docs/speed.md).",
    )


def _define_run_directory():
    flags.DEFINE_string("train_dir", settings.TRAIN_DIR, "Run directory: checkpoints and logs.")
    flags.DEFINE_bool(
        "overwrite", _TRAINING.overwrite, "Allow replacing the checkpoints of an existing run."
    )
    flags.DEFINE_integer(
        "keep_checkpoint_max", _TRAINING.keep_checkpoint_max, "Checkpoints kept in a run directory."
    )


def _define_checkpoint():
    flags.DEFINE_string(
        "checkpoint_path",
        "",
        "The checkpoint to use (a path prefix such as runs/a/model.ckpt-640); an unreadable "
        "one is an error. Empty: the latest of --train_dir that reads whole.",
    )


def _define_data():
    flags.DEFINE_bool(
        "frame_features",
        _MODEL.frame_features,
        "Frame-level SequenceExamples (True) or video-level Examples (False).",
    )
    flags.DEFINE_string(
        "feature_names", ", ".join(_MODEL.feature_names), "Comma-separated features to read."
    )
    flags.DEFINE_string(
        "feature_sizes",
        ", ".join(map(str, _MODEL.feature_sizes)),
        "Comma-separated sizes of those features.",
    )
    define("dataset_version")
    flags.DEFINE_integer("num_classes", 0, "Number of classes; 0 takes the dataset version's.")
    flags.DEFINE_integer(
        "max_num_frames", _MODEL.max_num_frames, "Frames per video are capped and padded to this."
    )


def _define_dataset_version():
    flags.DEFINE_enum(
        "dataset_version",
        _MODEL.dataset_version,
        sorted(yt8m_format.DATASET_VERSIONS),
        "YouTube-8M release: 2018 (id, 3862 classes) or 2017 (video_id, 4716 classes).",
    )


def _define_video_features():
    flags.DEFINE_string(
        "model_dir",
        _EXTRACTION.model_dir,
        "Folder of the Inception-v3, PCA and VGGish files that make features from video "
        "files (downloaded there when missing).",
    )
    flags.DEFINE_integer(
        "frames_per_batch", _EXTRACTION.frames_per_batch, "Frames through Inception-v3 at once."
    )
    flags.DEFINE_bool(
        "download_models", _EXTRACTION.download_models, "Download missing model files."
    )
    flags.DEFINE_string(
        "model_download_mirror",
        _EXTRACTION.model_download_mirror,
        "Base URL to download the model files from instead of their release URLs "
        "(same file names).",
    )
    flags.DEFINE_float(
        "video_timeout_seconds",
        _EXTRACTION.video_timeout_seconds,
        "A video whose decoding gives nothing for this long (a hung decode) is stopped and "
        "counted as failed (0: no limit).",
    )
    flags.DEFINE_enum(
        "frame_alignment",
        _EXTRACTION.frame_alignment,
        ["exact", "keyframe"],
        "The picture of each step a student sees on a video file: exact (the frame shown at "
        "the step's time, as the releases) or keyframe (the keyframe nearest to that time, "
        "within --keyframe_tolerance_seconds, decoded alone; exact where none is).",
    )
    flags.DEFINE_float(
        "keyframe_tolerance_seconds",
        _EXTRACTION.keyframe_tolerance_seconds,
        "With --frame_alignment=keyframe: how far from a step's time its keyframe may be.",
    )
    flags.DEFINE_integer(
        "feature_threads",
        _EXTRACTION.feature_threads,
        "TensorFlow threads of the networks that make features, per process (0: TensorFlow's "
        "choice; a Beam worker process takes 1 unless this is set).",
    )
    flags.DEFINE_string(
        "beam_pipeline_options",
        "",
        "Run on Apache Beam (requirements-beam.txt) with these comma-separated key=value "
        "pipeline options, e.g. runner=DataflowRunner,project=...,region=...,"
        "temp_location=gs://... (docs/scale.md). Empty: in this process.",
    )


def _define_input():
    flags.DEFINE_integer("batch_size", _INPUT.batch_size, "Videos per batch.")
    flags.DEFINE_integer("num_readers", _INPUT.num_readers, "Files read in parallel.")
    flags.DEFINE_integer(
        "num_parallel_calls",
        _INPUT.num_parallel_calls,
        "Batches parsed and decoded in parallel (0: tf.data AUTOTUNE).",
    )
    flags.DEFINE_bool(
        "skip_bad_records",
        _INPUT.skip_bad_records,
        "Skip (count and log) records that are corrupted or do not fit the flags, instead of "
        "stopping. Slower: every record is checked in Python.",
    )
    flags.DEFINE_bool(
        "segment_labels",
        _INPUT.segment_labels,
        "Read the rated 5-second segments of 2019 Segments records instead of whole videos: "
        "each segment is an example, its labels the rated scores, weighted 1 where rated.",
    )
    flags.DEFINE_integer(
        "segment_size", _INPUT.segment_size, "--segment_labels: frames per segment."
    )


def _hyperparameters():
    """{name: its dataclasses.Field} over every model family's `Params`."""
    found = {}
    for family in model_config.model_families():
        for field in dataclasses.fields(family.Params):
            found.setdefault(field.name, field)
    return found


def _define_model():
    flags.DEFINE_string("model", _MODEL.model, "Model of the teacher and the student.")
    define = {bool: flags.DEFINE_bool, int: flags.DEFINE_integer, float: flags.DEFINE_float}
    for name, field in _hyperparameters().items():
        define.get(type(field.default), flags.DEFINE_string)(
            name, field.default, field.metadata.get("help", "")
        )
    flags.DEFINE_enum(
        "frame_selection",
        _MODEL.frame_selection,
        frame_selection.RULES,
        "Which frames the student sees.",
    )
    flags.DEFINE_integer(
        "every_n", _MODEL.every_n, "Student sees every n-th frame (when no frame count is given)."
    )
    flags.DEFINE_integer(
        "num_student_frames",
        _MODEL.num_student_frames,
        "Frames the student sees (k); 0 means ceil(max_num_frames / every_n).",
    )
    flags.DEFINE_integer(
        "frame_selection_seed", _MODEL.frame_selection_seed, "Seed of the random rule."
    )
    flags.DEFINE_enum(
        "stride_frame_count",
        _MODEL.stride_frame_count,
        frame_selection.STRIDE_FRAME_COUNTS,
        "The student's num_frames under the original stride (uniform, --every_n, no "
        "--num_student_frames): original = int(L / max_num_frames * int(max_num_frames / "
        "every_n)) as the original code computed it; reached = ceil(L / every_n), every real "
        "frame the stride reaches.",
    )
    flags.DEFINE_integer(
        "frame_jitter",
        _MODEL.frame_jitter,
        "Training only: each frame the student sees moves by a random -n..n frames at every "
        "step (0: off), so that it tolerates pictures off its steps (--frame_alignment=keyframe).",
    )
    flags.DEFINE_enum(
        "eval_model",
        "student",
        ["student", "teacher"],
        "The model scored by evaluation, inference and export (a run holding only one model "
        "scores that one by default).",
    )
    flags.DEFINE_integer(
        "top_k",
        _EVALUATION.top_k,
        "Labels per video kept: in GAP and mAP, in the predictions CSV, in exports.",
    )


def _define_distillation():
    flags.DEFINE_string(
        "label_loss", _DISTILLATION.label_loss, "Loss between predictions and labels."
    )
    flags.DEFINE_enum(
        "pred_loss",
        _DISTILLATION.pred_loss,
        settings.PRED_LOSSES,
        "Distance between teacher and student predictions: kl (the original code) or mse (the "
        "paper's squared error).",
    )
    flags.DEFINE_float(
        "ce_loss_weight", _DISTILLATION.ce_loss_weight, "Weight of the student's label loss L_CE."
    )
    flags.DEFINE_float(
        "rep_loss_weight", _DISTILLATION.rep_loss_weight, "Weight of the representation loss L_rep."
    )
    flags.DEFINE_float(
        "pred_loss_weight", _DISTILLATION.pred_loss_weight, "Weight of the prediction loss L_pred."
    )


def _define_training():
    t = _TRAINING
    flags.DEFINE_string("train_data_pattern", t.train_data_pattern, "Training TFRecords (glob).")
    flags.DEFINE_integer("num_epochs", t.num_epochs, "Passes over the training data in this run.")
    flags.DEFINE_integer(
        "max_steps", t.max_steps, "Stop when the global step reaches this (0: no limit)."
    )
    flags.DEFINE_float("base_learning_rate", t.base_learning_rate, "Learning rate at step 0.")
    flags.DEFINE_float(
        "learning_rate_decay",
        t.learning_rate_decay,
        "Decay factor per --learning_rate_decay_examples.",
    )
    flags.DEFINE_integer(
        "learning_rate_decay_examples",
        t.learning_rate_decay_examples,
        "Examples after which the rate is multiplied by decay.",
    )
    flags.DEFINE_string("optimizer", t.optimizer, "A tf.compat.v1.train optimizer class.")
    flags.DEFINE_float(
        "clip_gradient_norm",
        t.clip_gradient_norm,
        "Clip gradients to this global norm (0: no clip).",
    )
    flags.DEFINE_float(
        "regularization_penalty", t.regularization_penalty, "Weight of the L2 weight penalties."
    )
    flags.DEFINE_bool(
        "start_new_model", t.start_new_model, "Start from scratch instead of the last checkpoint."
    )
    flags.DEFINE_integer(
        "checkpoint_every_steps",
        t.checkpoint_every_steps,
        "Save every this many steps (0: by time only).",
    )
    flags.DEFINE_integer(
        "checkpoint_every_secs", t.checkpoint_every_secs, "Save at least this often, in seconds."
    )
    flags.DEFINE_integer(
        "log_every_steps", t.log_every_steps, "Log line and summaries every this many steps."
    )
    flags.DEFINE_integer(
        "random_seed", t.random_seed, "Graph-level seed of initialisation and shuffling."
    )
    flags.DEFINE_bool(
        "deterministic",
        t.deterministic,
        "Same flags and --random_seed give bit-identical runs (fixed input order, TensorFlow's "
        "op determinism); --nodeterministic lets the input pipeline reorder for speed.",
    )
    flags.DEFINE_integer(
        "num_gpu",
        t.num_gpu,
        "Towers on that many GPUs: the batch is split, the gradients combined.",
    )
    flags.DEFINE_integer(
        "num_cpu_towers",
        t.num_cpu_towers,
        "Towers on that many logical CPU devices (the GPU code path, for tests and debugging).",
    )


def _define_evaluation():
    e = _EVALUATION
    flags.DEFINE_string("eval_data_pattern", e.eval_data_pattern, "Evaluation TFRecords (glob).")
    flags.DEFINE_bool("run_once", e.run_once, "Evaluate the latest checkpoint once and exit.")
    flags.DEFINE_string("metrics_json", e.metrics_json, "Also write the metrics to this JSON file.")
    flags.DEFINE_integer(
        "eval_interval_secs",
        e.eval_interval_secs,
        "Looping: seconds between checks for new checkpoints.",
    )
    flags.DEFINE_integer(
        "progress_every_secs", e.progress_every_secs, "Seconds between progress lines."
    )
    flags.DEFINE_integer(
        "per_class_report",
        e.per_class_report,
        "List this many classes with the best and the worst AP (among classes with a "
        "positive) in the metrics JSON and the log; names from --vocabulary.",
    )


def _define_segments():
    flags.DEFINE_string(
        "segment_classes",
        _EVALUATION.segment_classes,
        "--segment_labels: the classes scored and submitted, a file of class ids (the 2019 "
        "segment_label_ids.csv, 1,000 classes); empty: every class.",
    )
    flags.DEFINE_integer(
        "segment_top_k",
        _EVALUATION.segment_top_k,
        "--segment_labels: K of MAP@K, the segments ranked per class.",
    )


def _define_precision():
    flags.DEFINE_enum(
        "precision",
        _EVALUATION.precision,
        settings.PRECISIONS,
        "The models' numeric type: bfloat16 runs their matmuls in bfloat16 (on CPUs with "
        "AVX-512 BF16 or AMX, and on GPUs); the weights and checkpoints (the same as "
        "float32's), a training run's optimizer state and losses, the LSTM cell state "
        "and the scores stay float32.",
    )


def _define_vocabulary():
    flags.DEFINE_string(
        "vocabulary",
        _EVALUATION.vocabulary,
        "Class names for people to read: the 2018 vocabulary.csv or the 2017 "
        "label_names.csv (empty: class numbers only).",
    )


TOPICS = {
    "runtime": _define_runtime,
    "graph_optimizer": _define_graph_optimizer,
    "run_directory": _define_run_directory,
    "checkpoint": _define_checkpoint,
    "data": _define_data,
    "dataset_version": _define_dataset_version,
    "video_features": _define_video_features,
    "input": _define_input,
    "model": _define_model,
    "distillation": _define_distillation,
    "training": _define_training,
    "evaluation": _define_evaluation,
    "vocabulary": _define_vocabulary,
    "segments": _define_segments,
    "precision": _define_precision,
}
# What a run's binaries take: the data and model of the run, how to read it, and
# how its losses are made.
RUN_TOPICS = (
    "runtime",
    "graph_optimizer",
    "run_directory",
    "data",
    "input",
    "model",
    "distillation",
)
# What an evaluation binary takes besides: which checkpoint, the evaluation's own
# settings, class names, segments and precision.
EVALUATION_TOPICS = (*RUN_TOPICS, "checkpoint", "evaluation", "vocabulary", "segments", "precision")


def define(*topics, **defaults):
    """Defines the flags of `topics` (names in TOPICS), each once, with the calling
    binary's own `defaults` (flag name: value) where they differ from the settings'."""
    for topic in topics:
        if topic not in _defined:
            before = set(FLAGS)
            TOPICS[topic]()
            _defined[topic] = sorted(set(FLAGS) - before)
    for name, value in defaults.items():
        FLAGS.set_default(name, value)


_defined = {}  # topic: the names of its flags


def topic_flags(*topics):
    """The names of the flags of `topics` (each defined already)."""
    return [name for topic in topics for name in _defined[topic]]


def given(name):
    """Whether --name was set on the command line."""
    return name in FLAGS and FLAGS[name].present


def _values(settings_class, **extra):
    """A settings dataclass filled from the flags of the same names."""
    fields = {field.name for field in dataclasses.fields(settings_class)}
    return settings_class(
        **{name: FLAGS[name].value for name in fields if name in FLAGS and name not in extra},
        **extra,
    )


def session_settings():
    return _values(settings.SessionSettings)


def extraction_settings(**extra):
    """ExtractionSettings from the flags (`extra`: values the binary sets itself)."""
    return _values(settings.ExtractionSettings, **extra)


def input_settings():
    return _values(settings.InputSettings)


def distillation_settings():
    return _values(settings.DistillationSettings)


def training_settings():
    return _values(settings.TrainingSettings)


def run_settings():
    """Everything a training binary is given besides the models' shapes."""
    return settings.RunSettings(
        training=training_settings(),
        inputs=input_settings(),
        distillation=distillation_settings(),
        session=session_settings(),
    )


def evaluation_settings():
    return _values(
        settings.EvaluationSettings,
        label_loss=FLAGS.label_loss,
        inputs=input_settings(),
        session=session_settings(),
    )


def requested_model():
    """The model settings of the command line (see model_config.RequestedModel)."""
    names, sizes = yt8m_format.parse_feature_list(FLAGS.feature_names, FLAGS.feature_sizes)
    _, num_classes = yt8m_format.dataset_version_info(FLAGS.dataset_version, FLAGS.num_classes)
    setting_names = set(_MODEL.settings()) | set(_hyperparameters())
    values = {name: FLAGS[name].value for name in setting_names}
    values.update(feature_names=names, feature_sizes=sizes, num_classes=num_classes)
    given_names = {name for name in setting_names if given(name)}
    if given("dataset_version"):
        given_names.add("num_classes")  # the version sets the class count
    return model_config.RequestedModel(
        config=model_config.ModelConfig.from_settings([], values),
        values=values,
        given=frozenset(given_names),
        eval_model=FLAGS.eval_model if given("eval_model") else None,
    )
