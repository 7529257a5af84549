"""Builds the teacher and the student of a run, and their losses, from one config.

A run's `ModelConfig` (written to `model_flags.json` in its directory) says
which models it holds (`teacher`, `student` or both) and every setting that
shapes them, so that evaluation, conversion and resumption rebuild exactly the
same graph without repeating flags. The teacher lives under the variable scope
`model/`, the student under `model_student/`, as in the original checkpoints.
"""

import dataclasses
import json
import os

import tensorflow as tf
from absl import flags, logging

import frame_level_models
import frame_selection
import losses
import readers
import utils
import video_level_models
import vlad_models
from runtime import UserError

flags.DEFINE_string("model", "HierarchicalLstmModel", "Model of the teacher and the student.")
flags.DEFINE_enum(
    "eval_model",
    "student",
    ["student", "teacher"],
    "The model scored by evaluation, "
    "inference and export (a run holding only one model scores that one by default).",
)
flags.DEFINE_integer(
    "top_k", 20, "Labels per video kept: in GAP and mAP, in the predictions CSV, in exports."
)

FLAGS = flags.FLAGS
MODEL_FLAGS_FILE = "model_flags.json"
TEACHER_SCOPE = "model"
STUDENT_SCOPE = "model_student"
MODEL_MODULES = [frame_level_models, vlad_models, video_level_models]

# Model keyword arguments and the flags that give their defaults: those of the
# classifier for every model, and those of each model family.
CLASSIFIER_PARAM_FLAGS = {
    "classifier_name": "video_level_classifier_model",
    "num_mixtures": "moe_num_mixtures",
}
LSTM_PARAM_FLAGS = {"lstm_size": "lstm_cells", "num_layers": "lstm_layers"}
FAMILY_PARAM_FLAGS = {
    "HierarchicalLstmModel": dict(
        LSTM_PARAM_FLAGS,
        num_chunks="num_inputs_to_lstm",
        student_num_chunks="student_num_inputs_to_lstm",
    ),
    "LstmModel": LSTM_PARAM_FLAGS,
    "NetVLADModel": {
        "netvlad_cluster_size": "netvlad_cluster_size",
        "netvlad_hidden_size": "netvlad_hidden_size",
        "gating": "gating",
    },
    "NeXtVLADModel": {
        "nextvlad_cluster_size": "nextvlad_cluster_size",
        "nextvlad_hidden_size": "nextvlad_hidden_size",
        "groups": "groups",
        "expansion": "expansion",
        "gating_reduction": "gating_reduction",
        "dropout": "dropout",
    },
}
ALL_PARAM_FLAGS = dict(CLASSIFIER_PARAM_FLAGS)
for _family in FAMILY_PARAM_FLAGS.values():
    ALL_PARAM_FLAGS.update(_family)


def model_param_flags(model):
    """{keyword argument: flag} of a model's hyperparameters."""
    return dict(CLASSIFIER_PARAM_FLAGS, **FAMILY_PARAM_FLAGS.get(model, {}))


@dataclasses.dataclass
class ModelConfig:
    """Everything that shapes a run's models and their input."""

    models: list
    model: str = "HierarchicalLstmModel"
    model_params: dict = dataclasses.field(default_factory=dict)
    frame_features: bool = True
    feature_names: list = dataclasses.field(default_factory=lambda: ["rgb", "audio"])
    feature_sizes: list = dataclasses.field(default_factory=lambda: [1024, 128])
    dataset_version: str = "2018"
    num_classes: int = 3862
    max_frames: int = 300
    frame_selection: str = "uniform"
    every_n: int = 10
    num_student_frames: int = 0
    frame_selection_seed: int = 1234
    stride_frame_count: str = "original"

    @classmethod
    def from_flags(cls, models):
        """The config the command line describes, for a run holding `models`."""
        names, sizes = utils.parse_feature_list(FLAGS.feature_names, FLAGS.feature_sizes)
        _, num_classes = utils.dataset_version_info(FLAGS.dataset_version, FLAGS.num_classes)
        config = cls(
            models=list(models),
            model=FLAGS.model,
            model_params={
                key: FLAGS[flag].value for key, flag in model_param_flags(FLAGS.model).items()
            },
            frame_features=FLAGS.frame_features,
            feature_names=names,
            feature_sizes=sizes,
            dataset_version=FLAGS.dataset_version,
            num_classes=num_classes,
            max_frames=FLAGS.max_num_frames,
            frame_selection=FLAGS.frame_selection,
            every_n=FLAGS.every_n,
            num_student_frames=FLAGS.num_student_frames,
            frame_selection_seed=FLAGS.frame_selection_seed,
            stride_frame_count=FLAGS.stride_frame_count,
        )
        config.validate()
        return config

    def validate(self):
        """Fails early, with the flag to change, on settings that cannot build."""
        model_class(self.model)
        utils.find_class_by_name(
            self.model_params.get("classifier_name", "MoeModel"), [video_level_models], "classifier"
        )
        if self.max_frames <= 0:
            raise UserError(f"--max_num_frames must be positive, got {self.max_frames}")
        if "student" in self.models:
            if not self.frame_features:
                raise UserError(
                    "a student needs frame-level features: use --frame_features=True, or "
                    "--training_mode=teacher_only for video-level features"
                )
            self.selection()

    def selection(self):
        return frame_selection.FrameSelection(
            self.frame_selection,
            every_n=self.every_n,
            num_student_frames=self.num_student_frames,
            seed=self.frame_selection_seed,
            max_frames=self.max_frames,
            stride_frame_count=self.stride_frame_count,
        )

    def decodes_student_frames_only(self):
        """A frame-level run with only a student needs only the student's frames."""
        return self.frame_features and self.models == ["student"]

    def reader(self, is_training=False):
        """The run's reader; a student-only run's decodes only the selected frames."""
        return readers.make_reader(
            self.frame_features,
            dataset_version=self.dataset_version,
            num_classes=self.num_classes,
            feature_names=self.feature_names,
            feature_sizes=self.feature_sizes,
            max_frames=self.max_frames,
            frame_selection=self.selection() if self.decodes_student_frames_only() else None,
            is_training=is_training,
        )

    def with_models(self, models):
        return dataclasses.replace(self, models=list(models))

    def architecture_differences(self, other):
        """Settings (other than which models exist) that differ, as
        [(flag name, my value, other value)]."""
        mine, theirs = dataclasses.asdict(self), dataclasses.asdict(other)
        differences = []
        for key in mine:
            if key == "model_params":
                for param in sorted(set(mine[key]) | set(theirs[key])):
                    if mine[key].get(param) != theirs[key].get(param):
                        flag = ALL_PARAM_FLAGS.get(param, param)
                        differences.append((flag, mine[key].get(param), theirs[key].get(param)))
            elif key != "models" and mine[key] != theirs[key]:
                differences.append((FIELD_FLAGS[key][-1], mine[key], theirs[key]))
        return differences

    def save(self, directory):
        from runtime import write_json

        write_json(os.path.join(directory, MODEL_FLAGS_FILE), dataclasses.asdict(self))

    @classmethod
    def load(cls, directory):
        """The config saved in a run directory; for a directory the original code
        trained (checkpoints, no model_flags.json), see `original_run_config`."""
        path = os.path.join(directory, MODEL_FLAGS_FILE)
        if not os.path.exists(path):
            checkpoint = tf.train.latest_checkpoint(directory) if os.path.isdir(directory) else None
            if checkpoint:
                return original_run_config(directory, checkpoint)
            raise UserError(
                f"{path} does not exist: {directory} holds no trained run "
                "(train into it first, or point --train_dir at a run directory)"
            )
        try:
            with open(path) as handle:
                values = json.load(handle)
            # Runs saved before the setting existed counted every frame the stride reaches.
            values.setdefault("stride_frame_count", "reached")
            return cls(**values)
        except (json.JSONDecodeError, TypeError) as error:
            raise UserError(f"{path} is not a valid model_flags.json: {error}") from error


def _classes_in_checkpoint(variable_shapes, scope):
    """The class count of a checkpoint's classifier (MoE or logistic), or None."""
    prefix = f"{scope}/classifier/"
    gates = variable_shapes.get(prefix + "gates/weights")
    experts = variable_shapes.get(prefix + "experts/weights")
    if gates and experts:  # classes * (mixtures + 1) gate columns, classes * mixtures experts
        return gates[-1] - experts[-1]
    logistic = variable_shapes.get(prefix + "logistic/weights")
    return logistic[-1] if logistic else None


def original_run_config(directory, checkpoint):
    """The config of a run directory written by the original code.

    Such a directory has checkpoints but no model_flags.json. Its models are
    the scopes present in the checkpoint (`model/`, `model_student/`); every
    setting comes from the command line, with the original's defaults where
    not given, except that the class count, unless --dataset_version or
    --num_classes is given, is read from the checkpoint's classifier (the
    original hard-wired 4716 and told users to edit it).
    """
    try:
        shapes = tf.train.load_checkpoint(checkpoint).get_variable_to_shape_map()
    except (tf.errors.OpError, ValueError) as error:
        raise UserError(f"cannot read checkpoint {checkpoint}: {error}") from error
    models = [
        name
        for name, scope in (("teacher", TEACHER_SCOPE), ("student", STUDENT_SCOPE))
        if any(variable.startswith(scope + "/") for variable in shapes)
    ]
    if not models:
        raise UserError(
            f"{checkpoint} holds neither a teacher (model/) nor a student (model_student/), "
            f"and {directory} has no {MODEL_FLAGS_FILE}: it is not a run of this project "
            "or of the original code"
        )
    config = ModelConfig.from_flags(models)
    if not (FLAGS["num_classes"].present or FLAGS["dataset_version"].present):
        classes = _classes_in_checkpoint(shapes, scopes_of(models)[0])
        if classes:
            config.num_classes = classes
    logging.info(
        "%s has no %s: reading it as a run of the original code (%s; settings from the "
        "command line, %d classes)",
        directory,
        MODEL_FLAGS_FILE,
        " and ".join(models),
        config.num_classes,
    )
    return config


# Config fields and the flags that set them.
FIELD_FLAGS = {
    "model": ("model",),
    "frame_features": ("frame_features",),
    "feature_names": ("feature_names",),
    "feature_sizes": ("feature_sizes",),
    "dataset_version": ("dataset_version",),
    "num_classes": ("dataset_version", "num_classes"),
    "max_frames": ("max_num_frames",),
    "frame_selection": ("frame_selection",),
    "every_n": ("every_n",),
    "num_student_frames": ("num_student_frames",),
    "frame_selection_seed": ("frame_selection_seed",),
    "stride_frame_count": ("stride_frame_count",),
}
# Settings that shape a teacher (a serial run's teacher must match them).
TEACHER_FIELDS = (
    "model",
    "frame_features",
    "feature_names",
    "feature_sizes",
    "num_classes",
    "max_frames",
)


def config_from_flags(models, saved=None, directory=None):
    """The config of a run holding `models`.

    Without `saved`, from the flags. With the `saved` config of an existing run,
    every setting not given on the command line keeps its saved value, and a
    given one that differs is an error (a checkpoint only fits its own shapes).
    """
    if saved is None:
        return ModelConfig.from_flags(models)
    if sorted(saved.models) != sorted(models):
        raise UserError(
            f"{directory or 'the run directory'} holds {' and '.join(saved.models)}, "
            f"but this run needs {' and '.join(models)}; use another --train_dir"
        )
    given = ModelConfig.from_flags(models)
    merged = dataclasses.asdict(saved)
    for field, names in FIELD_FLAGS.items():
        if any(FLAGS[name].present for name in names):
            merged[field] = getattr(given, field)
    if merged["model"] != saved.model:
        merged["model_params"] = {}
    for key, flag in model_param_flags(merged["model"]).items():
        if FLAGS[flag].present or key not in merged["model_params"]:
            merged["model_params"][key] = given.model_params.get(key, FLAGS[flag].value)
    config = ModelConfig(**merged)
    differences = saved.architecture_differences(config)
    if differences:
        detail = "; ".join(
            f"--{flag}: saved {before!r}, given {after!r}" for flag, before, after in differences
        )
        raise UserError(
            f"{directory or 'the run directory'} was trained with other model settings "
            f"({detail}); drop those flags to resume, or use a new --train_dir"
        )
    config.validate()
    return config


def teacher_differences(teacher_config, config):
    """Settings of `config`'s teacher that differ from those of `teacher_config`."""
    teacher_flags = {FIELD_FLAGS[field][-1] for field in TEACHER_FIELDS}
    teacher_flags |= set(ALL_PARAM_FLAGS.values()) - {"student_num_inputs_to_lstm"}
    return "; ".join(
        f"--{flag}: teacher {before!r}, this run {after!r}"
        for flag, before, after in teacher_config.architecture_differences(config)
        if flag in teacher_flags
    )


def scored_model(config, directory):
    """The model --eval_model picks among those a run holds."""
    wanted = FLAGS.eval_model
    if wanted in config.models:
        return wanted
    if not FLAGS["eval_model"].present and len(config.models) == 1:
        return config.models[0]
    raise UserError(f"--eval_model={wanted}: {directory} holds only {', '.join(config.models)}")


def model_class(name):
    try:
        return utils.find_class_by_name(name, MODEL_MODULES, "model")
    except ValueError as error:
        raise UserError(f"--model: {error}") from error


def _create(model, model_input, num_frames, config, student, is_training):
    """Calls the model's teacher or student builder; returns (representation, predictions)."""
    build = model.create_model_inference if student else model.create_model
    result = build(
        model_input,
        config.num_classes,
        num_frames,
        is_training=is_training,
        feature_sizes=config.feature_sizes,
        **config.model_params,
    )
    if isinstance(result, dict):  # a video-level model: its input is its representation
        return model_input, result["predictions"]
    representation, outputs = result
    return representation, outputs["predictions"]


def build_models(config, batch, is_training, frozen=()):
    """Builds the config's models on an input batch; models named in `frozen`
    are built in inference mode (e.g. batch norm with its moving statistics).

    Returns a dict with `teacher_representation`, `teacher_predictions` (if the
    config holds a teacher), `student_representation`, `student_predictions`,
    `student_num_frames` (if it holds a student), and `labels`.
    """
    model = model_class(config.model)()
    model_input = utils.l2_normalize_frames(batch["video_matrix"])
    outputs = {"labels": batch["labels"]}
    if "teacher" in config.models:
        with tf.compat.v1.variable_scope(TEACHER_SCOPE):
            representation, predictions = _create(
                model,
                model_input,
                batch["num_frames"],
                config,
                student=False,
                is_training=is_training and "teacher" not in frozen,
            )
        outputs.update(teacher_representation=representation, teacher_predictions=predictions)
    if "student" in config.models:
        if config.decodes_student_frames_only():  # the reader selected them already
            student_input, student_num_frames = model_input, batch["num_frames"]
        else:
            student_input, student_num_frames = frame_selection.select_frames(
                model_input,
                batch["num_frames"],
                config.selection(),
                is_training=is_training,
                video_ids=batch.get("video_ids"),
            )
        with tf.compat.v1.variable_scope(STUDENT_SCOPE):
            representation, predictions = _create(
                model,
                student_input,
                student_num_frames,
                config,
                student=True,
                is_training=is_training and "student" not in frozen,
            )
        outputs.update(
            student_representation=representation,
            student_predictions=predictions,
            student_num_frames=student_num_frames,
        )
    return outputs


def model_variables(scope):
    """The variables a model owns (weights, batch-norm statistics), not optimizer slots."""
    return tf.compat.v1.get_collection(tf.compat.v1.GraphKeys.MODEL_VARIABLES, scope + "/")


def register_model_variables(scopes):
    """Marks the variables built so far under `scopes` as model variables."""
    for scope in scopes:
        for variable in tf.compat.v1.global_variables(scope + "/"):
            if variable not in model_variables(scope):
                tf.compat.v1.add_to_collection(tf.compat.v1.GraphKeys.MODEL_VARIABLES, variable)


def build_inference_graph(config, batch, is_training=False, frozen=()):
    """Models plus the registration of their variables; what every graph starts with."""
    outputs = build_models(config, batch, is_training, frozen)
    register_model_variables(scopes_of(config.models))
    return outputs


def scopes_of(models):
    return [TEACHER_SCOPE if name == "teacher" else STUDENT_SCOPE for name in models]


def placeholder_batch(config):
    """Input placeholders shaped like a reader's batch (for graphs that read no data)."""
    width = sum(config.feature_sizes)
    steps = (
        config.selection().num_frames
        if config.decodes_student_frames_only()
        else (config.max_frames)
    )
    shape = [None, steps, width] if config.frame_features else [None, width]
    return {
        "video_ids": tf.compat.v1.placeholder(tf.string, [None], "video_ids"),
        "video_matrix": tf.compat.v1.placeholder(tf.float32, shape, "video_matrix"),
        "labels": tf.compat.v1.placeholder(tf.float32, [None, config.num_classes], "labels"),
        "num_frames": tf.compat.v1.placeholder(tf.int32, [None], "num_frames"),
    }


def evaluation_losses(outputs, evaluated, label_loss=None):
    """Label loss of the evaluated model, and L_REP when a teacher and a student exist."""
    label_loss = label_loss or losses.get_label_loss()
    result = {
        "loss": label_loss.calculate_loss(outputs[f"{evaluated}_predictions"], outputs["labels"])
    }
    if "teacher_representation" in outputs and "student_representation" in outputs:
        result["rep_loss"] = losses.representation_loss(
            outputs["teacher_representation"], outputs["student_representation"]
        )
    return result
