"""Every setting a run is given besides its models' shapes, with each default
written once: how a session runs, how input is read, how a run trains and makes
the student's loss, how it is evaluated.

Frozen dataclasses whose field names are the flags' names (command_line.py
fills them from the flags and takes their defaults from here). The module is
light on purpose: it imports no model, reader or training code, so a binary
that defines a few flags (the sample generator) does not load the training stack.
"""

import dataclasses

import tensorflow as tf

from fewer_frames.system.errors import UserError

# The numeric types a model can be scored in (model_graph.build_models).
PRECISIONS = ("float32", "bfloat16")

# The seed's run directories and evaluation batch.
TRAIN_DIR = "./model_HLSTM_TeaStud_every10_train/"
FINETUNE_DIR = "./model_HLSTM_TeaStud_every10_finetune/"
EVALUATION_BATCH_SIZE = 512
PRED_LOSSES = ("kl", "mse")


def checked_top_k(top_k):
    """`top_k` (labels kept per video), or a UserError when it is not positive."""
    if top_k <= 0:
        raise UserError(f"--top_k={top_k} must be positive")
    return top_k


@dataclasses.dataclass(frozen=True)
class SessionSettings:
    """How TensorFlow runs: thread pools (0: TensorFlow's choice), GPU memory, XLA
    compilation of the models, and TensorFlow's graph optimizer."""

    intra_op_threads: int = 0
    inter_op_threads: int = 0
    gpu_memory_growth: bool = True
    xla: bool = False  # compile the models' ops with XLA (model_graph.build_models)
    # Grappler rewrites each graph before its first run: about 2 s for a training
    # graph on a CPU, and no faster steps on this project's models (docs/speed.md).
    grappler: bool = False

    def session_config(self, cpu_devices=1):
        """A session's settings; `cpu_devices` logical CPU devices (CPU towers)."""
        config = tf.compat.v1.ConfigProto(
            intra_op_parallelism_threads=self.intra_op_threads,
            inter_op_parallelism_threads=self.inter_op_threads,
            allow_soft_placement=True,
            device_count={"CPU": cpu_devices},
        )
        # Take GPU memory as needed, not all of it at the start.
        config.gpu_options.allow_growth = self.gpu_memory_growth
        config.graph_options.rewrite_options.disable_meta_optimizer = not self.grappler
        return config


@dataclasses.dataclass(frozen=True)
class InputSettings:
    """How batches are read: the input flags of every binary that reads data."""

    batch_size: int = 256
    num_readers: int = 4
    num_parallel_calls: int = 0
    skip_bad_records: bool = False
    segment_labels: bool = False  # read the rated segments of 2019 records (readers.py)
    segment_size: int = 5

    def segments(self):
        """Frames per rated segment when reading segments, else 0 (whole videos)."""
        return self.segment_size if self.segment_labels else 0


EVALUATION_INPUT = InputSettings(batch_size=EVALUATION_BATCH_SIZE)


@dataclasses.dataclass(frozen=True)
class DistillationSettings:
    """How the student's loss is made (saved with a run in train_flags.json)."""

    label_loss: str = "CrossEntropyLoss"
    pred_loss: str = "kl"
    ce_loss_weight: float = 1.0
    rep_loss_weight: float = 1.0
    pred_loss_weight: float = 1.0


@dataclasses.dataclass(frozen=True)
class TrainingSettings:
    """How a run trains (the training flags; saved in the run's train_flags.json)."""

    train_data_pattern: str = "./yt8m/train*.tfrecord"
    num_epochs: int = 1
    max_steps: int = 0
    base_learning_rate: float = 0.001
    learning_rate_decay: float = 1.0
    learning_rate_decay_examples: int = 4000000
    optimizer: str = "AdamOptimizer"
    clip_gradient_norm: float = 1.0
    regularization_penalty: float = 2.0
    start_new_model: bool = False
    overwrite: bool = False
    keep_checkpoint_max: int = 5
    checkpoint_every_steps: int = 0
    checkpoint_every_secs: int = 600
    log_every_steps: int = 10
    random_seed: int = 0
    deterministic: bool = True
    num_gpu: int = 1
    num_cpu_towers: int = 1
    # The models' matmuls in training (model_graph.py); the weights, the optimizer's
    # state, the checkpoints, the LSTM cell state, the scores and the losses stay float32.
    precision: str = "float32"


@dataclasses.dataclass(frozen=True)
class RunSettings:
    """Everything besides the models' shapes that a training run is given."""

    training: TrainingSettings = TrainingSettings()
    inputs: InputSettings = InputSettings()
    distillation: DistillationSettings = DistillationSettings()
    session: SessionSettings = SessionSettings()

    def values(self, mode):
        """What train_flags.json holds: the mode and every setting."""
        return {"mode": mode, **dataclasses.asdict(self)}


@dataclasses.dataclass(frozen=True)
class EvaluationSettings:
    """What to evaluate on, how often, and where the figures go (the evaluation flags)."""

    eval_data_pattern: str = "./yt8m/validate*.tfrecord"
    top_k: int = 20
    run_once: bool = False
    metrics_json: str = ""
    eval_interval_secs: int = 60
    checkpoint_path: str = ""  # evaluate this checkpoint once, instead of following the run
    progress_every_secs: int = 30
    precision: str = "float32"  # of the scored model's matmuls (model_graph.py)
    per_class_report: int = 0  # classes listed at each end of the per-class AP ranking
    vocabulary: str = ""  # class names for that list (vocabulary.py)
    segment_classes: str = ""  # --segment_labels: the whitelist file (empty: every class)
    segment_top_k: int = 100_000  # --segment_labels: K of MAP@K, segments per class
    label_loss: str = DistillationSettings.label_loss
    inputs: InputSettings = EVALUATION_INPUT
    session: SessionSettings = SessionSettings()

    def __post_init__(self):
        checked_top_k(self.top_k)


@dataclasses.dataclass(frozen=True)
class ExtractionSettings:
    """How video files become the releases' features (extract_features.py, and
    inference.py on video files): the model files, the time steps, batching."""

    dataset_version: str  # which ids and classes the records take
    model_dir: str = "~/yt8m"
    frames_per_second: float = 1.0
    max_frames: int = 300
    frames_per_batch: int = 32
    download_models: bool = True
    model_download_mirror: str = ""
    video_timeout_seconds: float = 600.0  # a decode giving nothing this long fails (0: no limit)
    feature_threads: int = 0  # TensorFlow threads of the networks (0: TensorFlow's choice)
    grappler: bool = False  # as SessionSettings.grappler: 2 s more on Inception's first batch
    # Which picture a sparse step gets: "exact", the frame shown at its time (the
    # releases'), or "keyframe", the nearest keyframe within the tolerance, decoded
    # alone (video_files.SparseVideoReader).
    frame_alignment: str = "exact"
    keyframe_tolerance_seconds: float = 0.5
