"""What a run is: its models and every setting that shapes them (`ModelConfig`).

A run directory holds its `ModelConfig` in `model_flags.json`, so that
evaluation, conversion and resumption rebuild exactly the same graph without
repeating flags. A command line asks for settings (`RequestedModel`): for a new
run they are the config; for an existing run, given settings must agree with
the saved ones. A directory the original code trained (checkpoints, no
`model_flags.json`) is read with the requested settings. The teacher lives under
the variable scope `model/`, the student under `model_student/`, as in the
original checkpoints.
"""

import dataclasses
import importlib
import inspect
import json
import os

import tensorflow as tf
from absl import logging

import frame_level_models
import frame_selection
import readers
import utils
import video_level_models
import vlad_models
from runtime import UserError, write_json

MODEL_FLAGS_FILE = "model_flags.json"
TEACHER_SCOPE = "model"
STUDENT_SCOPE = "model_student"
# The model modules: the project's, then every other `*_models.py` beside them,
# so that a new family is one new file (see README, "How the configuration flows").
_OWN_MODEL_MODULES = [frame_level_models, vlad_models, video_level_models]
_CODE_DIR = os.path.dirname(os.path.abspath(__file__))
MODEL_MODULES = _OWN_MODEL_MODULES + [
    importlib.import_module(name[: -len(".py")])
    for name in sorted(os.listdir(_CODE_DIR))
    if name.endswith("_models.py")
    and name[: -len(".py")] not in {module.__name__ for module in _OWN_MODEL_MODULES}
]

# The frame selection's defaults, written once, in FrameSelection's signature.
_SELECTION = {
    name: parameter.default
    for name, parameter in inspect.signature(frame_selection.FrameSelection).parameters.items()
}


def model_class(name):
    try:
        return utils.find_class_by_name(name, MODEL_MODULES, "model")
    except ValueError as error:
        raise UserError(f"--model: {error}") from error


def model_families():
    """Every model class a run can name, in module order."""
    return [
        value
        for module in MODEL_MODULES
        for name, value in vars(module).items()
        if isinstance(value, type)
        and value.__module__ == module.__name__
        and hasattr(value, "create_model")
        and not name.startswith("Base")
        and module is not video_level_models
    ]


def hyperparameters(model):
    """The declared hyperparameters of `model` (a class name): the classifier's, then
    the family's own."""
    return video_level_models.CLASSIFIER_HYPERPARAMETERS + model_class(model).hyperparameters


def scopes_of(models):
    return [TEACHER_SCOPE if name == "teacher" else STUDENT_SCOPE for name in models]


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
    max_frames: int = _SELECTION["max_frames"]
    frame_selection: str = _SELECTION["rule"]
    every_n: int = _SELECTION["every_n"]
    num_student_frames: int = _SELECTION["num_student_frames"]
    frame_selection_seed: int = _SELECTION["seed"]
    stride_frame_count: str = _SELECTION["stride_frame_count"]

    def validate(self):
        """Fails early, with the flag to change, on settings that cannot build."""
        model_class(self.model)
        utils.find_class_by_name(
            self.model_params.get("classifier_name", video_level_models.CLASSIFIER.default),
            [video_level_models],
            "classifier",
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
        return self

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
        param_flags = _param_flags()
        differences = []
        for key in mine:
            if key == "model_params":
                for param in sorted(set(mine[key]) | set(theirs[key])):
                    if mine[key].get(param) != theirs[key].get(param):
                        flag = param_flags.get(param, param)
                        differences.append((flag, mine[key].get(param), theirs[key].get(param)))
            elif key != "models" and mine[key] != theirs[key]:
                differences.append((FIELD_FLAGS[key][-1], mine[key], theirs[key]))
        return differences

    def save(self, directory):
        write_json(os.path.join(directory, MODEL_FLAGS_FILE), dataclasses.asdict(self))

    @classmethod
    def read(cls, path):
        """The config in a model_flags.json file."""
        try:
            with tf.io.gfile.GFile(path) as handle:
                values = json.load(handle)
            # Runs saved before the setting existed counted every frame the stride reaches.
            values.setdefault("stride_frame_count", "reached")
            return cls(**values)
        except (json.JSONDecodeError, TypeError) as error:
            raise UserError(f"{path} is not a valid model_flags.json: {error}") from error


def _param_flags():
    """{model keyword argument: the flag that sets it}, over every family."""
    flags = {}
    for family in model_families():
        for parameter in video_level_models.CLASSIFIER_HYPERPARAMETERS + family.hyperparameters:
            flags[parameter.name] = parameter.flag_name
    return flags


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


@dataclasses.dataclass
class RequestedModel:
    """The model settings a command line asks for: the config (defaults where not
    given), the values of every family's hyperparameters (`param_values`), which
    config fields and hyperparameters were given, and the model to score
    (`eval_model`, None when not given: the student, or the only model of a run)."""

    config: ModelConfig = dataclasses.field(default_factory=lambda: ModelConfig(models=[]))
    param_values: dict = dataclasses.field(default_factory=dict)
    given_fields: frozenset = frozenset()
    given_params: frozenset = frozenset()
    eval_model: str | None = None

    def new_config(self, models):
        """The config of a new run holding `models`."""
        return self.config.with_models(models).validate()

    def run_config(self, models, saved, directory):
        """The config of a run holding `models`: a new one without `saved`; with the
        `saved` config of an existing run, every setting not given keeps its saved
        value, and a given one that differs is an error (a checkpoint only fits its
        own shapes)."""
        if saved is None:
            return self.new_config(models)
        if sorted(saved.models) != sorted(models):
            raise UserError(
                f"{directory} holds {' and '.join(saved.models)}, "
                f"but this run needs {' and '.join(models)}; use another --train_dir"
            )
        merged = dataclasses.asdict(saved)
        for field in self.given_fields:
            merged[field] = getattr(self.config, field)
        if merged["model"] != saved.model:
            merged["model_params"] = {}
        for parameter in hyperparameters(merged["model"]):
            key = parameter.name
            if key in self.given_params or key not in merged["model_params"]:
                merged["model_params"][key] = self.param_values.get(key, parameter.default)
        config = ModelConfig(**merged)
        differences = saved.architecture_differences(config)
        if differences:
            detail = "; ".join(
                f"--{flag}: saved {before!r}, given {after!r}"
                for flag, before, after in differences
            )
            raise UserError(
                f"{directory} was trained with other model settings ({detail}); drop those "
                "flags to resume, or use a new --train_dir"
            )
        return config.validate()

    def load(self, directory):
        """The config saved in a run directory; for a directory the original code
        trained (checkpoints, no model_flags.json), see `original_run_config`."""
        path = os.path.join(directory, MODEL_FLAGS_FILE)
        if tf.io.gfile.exists(path):
            return ModelConfig.read(path)
        checkpoint = tf.train.latest_checkpoint(directory) if tf.io.gfile.isdir(directory) else None
        if checkpoint:
            return self.original_run_config(directory, checkpoint)
        raise UserError(
            f"{path} does not exist: {directory} holds no trained run "
            "(train into it first, or point --train_dir at a run directory)"
        )

    def existing_run(self, directory):
        """The config of the run in `directory`, with the settings given."""
        saved = self.load(directory)
        return self.run_config(saved.models, saved, directory)

    def scored_run(self, directory):
        """(the config of the run in `directory` holding only the model to score,
        that model's name)."""
        config = self.existing_run(directory)
        scored = self.scored_model(config, directory)
        return config.with_models([scored]), scored

    def scored_model(self, config, directory):
        """The model --eval_model picks among those a run holds."""
        wanted = self.eval_model or "student"
        if wanted in config.models:
            return wanted
        if self.eval_model is None and len(config.models) == 1:
            return config.models[0]
        raise UserError(f"--eval_model={wanted}: {directory} holds only {', '.join(config.models)}")

    def original_run_config(self, directory, checkpoint):
        """The config of a run directory written by the original code.

        Such a directory has checkpoints but no model_flags.json. Its models are
        the scopes present in the checkpoint (`model/`, `model_student/`); every
        setting is the requested one (the original's defaults where not given),
        except that the class count, unless --dataset_version or --num_classes is
        given, is read from the checkpoint's classifier (the original hard-wired
        4716 and told users to edit it).
        """
        try:
            shapes = tf.compat.v1.train.NewCheckpointReader(checkpoint).get_variable_to_shape_map()
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
        config = self.new_config(models)
        if "num_classes" not in self.given_fields:
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


def _classes_in_checkpoint(variable_shapes, scope):
    """The class count of a checkpoint's classifier (MoE or logistic), or None."""
    prefix = f"{scope}/classifier/"
    gates = variable_shapes.get(prefix + "gates/weights")
    experts = variable_shapes.get(prefix + "experts/weights")
    if gates and experts:  # classes * (mixtures + 1) gate columns, classes * mixtures experts
        return gates[-1] - experts[-1]
    logistic = variable_shapes.get(prefix + "logistic/weights")
    return logistic[-1] if logistic else None


def teacher_differences(teacher_config, config):
    """Settings of `config`'s teacher that differ from those of `teacher_config`."""
    teacher_flags = {FIELD_FLAGS[field][-1] for field in TEACHER_FIELDS}
    teacher_flags |= set(_param_flags().values()) - {"student_num_inputs_to_lstm"}
    return "; ".join(
        f"--{flag}: teacher {before!r}, this run {after!r}"
        for flag, before, after in teacher_config.architecture_differences(config)
        if flag in teacher_flags
    )
