"""What a run is: its models and every setting that shapes them (`ModelConfig`).

A run directory holds its `ModelConfig` in `model_flags.json`, so that
evaluation, conversion and resumption rebuild exactly the same graph without
repeating flags. A command line asks for settings (`RequestedModel`): for a new
run they are the config; for an existing run, given settings must agree with
the saved ones (run_dirs/run_directory.py reads a run directory's config, and
run_dirs/original_runs.py a directory the original code trained, without
`model_flags.json`, with the requested settings). The teacher lives under the
variable scope `model/`, the student under `model_student/`, as in the
original checkpoints.
"""

import dataclasses
import importlib
import inspect
import os

from fewer_frames.inputs import frame_selection, readers
from fewer_frames.models import base_model, frame_level_models, video_level_models, vlad_models
from fewer_frames.models.base_model import shaping_names
from fewer_frames.system.errors import UserError

TEACHER_SCOPE = "model"
STUDENT_SCOPE = "model_student"
# The model modules: the project's, then every other `*_models.py` in this package,
# so that a new family is one new file (see docs/models.md, "Adding a family").
_OWN_MODEL_MODULES = [frame_level_models, vlad_models, video_level_models]
_MODELS_DIR = os.path.dirname(os.path.abspath(__file__))
MODEL_MODULES = _OWN_MODEL_MODULES + [
    importlib.import_module(f"{__package__}.{name[: -len('.py')]}")
    for name in sorted(os.listdir(_MODELS_DIR))
    if name.endswith("_models.py")
    and f"{__package__}.{name[: -len('.py')]}" not in {m.__name__ for m in _OWN_MODEL_MODULES}
]

# The frame selection's defaults, written once, in FrameSelection's signature.
_SELECTION = {
    name: parameter.default
    for name, parameter in inspect.signature(frame_selection.FrameSelection).parameters.items()
}


def model_class(name):
    try:
        return base_model.find_class_by_name(name, MODEL_MODULES, "model")
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


def scopes_of(models):
    return [TEACHER_SCOPE if name == "teacher" else STUDENT_SCOPE for name in models]


# Keys of model_flags.json files saved before one name served flag, field and
# keyword argument: {old name: name}.
_RENAMED_FIELDS = {"max_frames": "max_num_frames"}
_RENAMED_PARAMS = {
    "lstm_size": "lstm_cells",
    "num_layers": "lstm_layers",
    "num_chunks": "num_inputs_to_lstm",
    "student_num_chunks": "student_num_inputs_to_lstm",
    "num_mixtures": "moe_num_mixtures",
    "classifier_name": "video_level_classifier_model",
}


@dataclasses.dataclass
class ModelConfig:
    """Everything that shapes a run's models and their input. Every setting has one
    name: its flag's, its field's here, the model's keyword argument.
    `model_params` is the family's `Params` (base_model.py); a dict is read into it."""

    models: list
    model: str = "HierarchicalLstmModel"
    model_params: object = None
    frame_features: bool = True
    feature_names: list = dataclasses.field(default_factory=lambda: ["rgb", "audio"])
    feature_sizes: list = dataclasses.field(default_factory=lambda: [1024, 128])
    dataset_version: str = "2018"
    num_classes: int = 3862
    max_num_frames: int = _SELECTION["max_frames"]
    frame_selection: str = _SELECTION["rule"]
    every_n: int = _SELECTION["every_n"]
    num_student_frames: int = _SELECTION["num_student_frames"]
    frame_selection_seed: int = _SELECTION["seed"]
    stride_frame_count: str = _SELECTION["stride_frame_count"]
    frame_jitter: int = _SELECTION["jitter"]

    def __post_init__(self):
        family = model_class(self.model)
        if self.model_params is None:
            self.model_params = family.Params()
        elif isinstance(self.model_params, dict):
            self.model_params = family.params(**self.model_params)

    @classmethod
    def from_settings(cls, models, values):
        """The config of `models` from {setting name: value}; names of other
        families' hyperparameters are left out."""
        family = model_class(values.get("model", cls.model))
        hyperparameters = {field.name for field in dataclasses.fields(family.Params)}
        fields = {field.name for field in dataclasses.fields(cls)} - {"models", "model_params"}
        return cls(
            models=list(models),
            model_params={name: values[name] for name in hyperparameters & values.keys()},
            **{name: values[name] for name in fields & values.keys()},
        )

    def settings(self):
        """{name: value} of every setting: the fields, then the hyperparameters."""
        values = {
            field.name: getattr(self, field.name)
            for field in dataclasses.fields(self)
            if field.name not in ("models", "model_params")
        }
        values.update(dataclasses.asdict(self.model_params))
        return values

    def validate(self):
        """Fails early, with the flag to change, on settings that cannot build."""
        base_model.find_class_by_name(
            self.model_params.video_level_classifier_model, [video_level_models], "classifier"
        )
        if self.max_num_frames <= 0:
            raise UserError(f"--max_num_frames must be positive, got {self.max_num_frames}")
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
            max_frames=self.max_num_frames,
            stride_frame_count=self.stride_frame_count,
            jitter=self.frame_jitter,
        )

    def decodes_student_frames_only(self):
        """A frame-level run with only a student needs only the student's frames."""
        return self.frame_features and self.models == ["student"]

    def reader(self, is_training=False, segment_size=0):
        """The run's reader; a student-only run's decodes only the selected frames;
        with `segment_size`, it reads rated segments (readers.py)."""
        return readers.make_reader(
            self.frame_features,
            dataset_version=self.dataset_version,
            num_classes=self.num_classes,
            feature_names=self.feature_names,
            feature_sizes=self.feature_sizes,
            max_frames=self.max_num_frames,
            frame_selection=self.selection() if self.decodes_student_frames_only() else None,
            is_training=is_training,
            segment_size=segment_size,
        )

    def with_models(self, models):
        return dataclasses.replace(self, models=list(models))

    def architecture_differences(self, other, names=None):
        """Settings (other than which models exist) that differ and shape a
        checkpoint, as [(name, my value, other value)]; only those in `names`
        when given."""
        mine, theirs = self.settings(), other.settings()
        compared = [name for name in mine | theirs if name in _shaping_names(self, other)]
        return [
            (name, mine.get(name), theirs.get(name))
            for name in compared
            if mine.get(name) != theirs.get(name) and (names is None or name in names)
        ]

    @classmethod
    def from_saved(cls, values):
        """The config of saved `values` (run_files.read_model_config), those saved
        under the former names of its settings included."""
        values = _renamed(values, _RENAMED_FIELDS)
        values["model_params"] = _renamed(values.get("model_params", {}), _RENAMED_PARAMS)
        # Runs saved before the setting existed counted every frame the stride reaches.
        values.setdefault("stride_frame_count", "reached")
        return cls(**values)


def _renamed(values, renames):
    return {renames.get(name, name): value for name, value in values.items()}


def _shaping_names(*configs):
    """The settings of `configs` that shape a checkpoint: every field, and each
    family's hyperparameters but those marked `shapes=False`."""
    names = {field.name for field in dataclasses.fields(ModelConfig)} - {"models", "model_params"}
    for config in configs:
        names |= shaping_names(type(config.model_params))
    return names


# Settings that shape a teacher (a serial run's teacher must match them), besides
# the family's hyperparameters that are not the student's alone.
TEACHER_FIELDS = (
    "model",
    "frame_features",
    "feature_names",
    "feature_sizes",
    "num_classes",
    "max_num_frames",
)


@dataclasses.dataclass
class RequestedModel:
    """The model settings a command line asks for: the config (defaults where not
    given), the value of every setting of every family (`values`, so that a run of
    another family than --model's gets its given settings), the names of those
    given, and the model to score (`eval_model`, None when not given: the
    student, or the only model of a run)."""

    config: ModelConfig = dataclasses.field(default_factory=lambda: ModelConfig(models=[]))
    values: dict = dataclasses.field(default_factory=dict)
    given: frozenset = frozenset()
    eval_model: str | None = None

    def new_config(self, models):
        """The config of a new run holding `models`."""
        return self.config.with_models(models).validate()

    def run_config(self, models, saved, directory):
        """The config of a run holding `models`: a new one without `saved`; with the
        `saved` config of an existing run, given settings override saved ones, and
        one that differs where it shapes the checkpoint is an error (a checkpoint
        only fits its own shapes)."""
        if saved is None:
            return self.new_config(models)
        if sorted(saved.models) != sorted(models):
            raise UserError(
                f"{directory} holds {' and '.join(saved.models)}, "
                f"but this run needs {' and '.join(models)}; use another --train_dir"
            )
        requested = {**self.values, **self.config.settings()}
        merged = saved.settings()
        merged.update({name: requested[name] for name in self.given if name in requested})
        config = ModelConfig.from_settings(saved.models, merged)
        differences = saved.architecture_differences(config)
        if differences:
            detail = "; ".join(
                f"--{name}: saved {before!r}, given {after!r}"
                for name, before, after in sorted(differences)
            )
            raise UserError(
                f"{directory} was trained with other model settings ({detail}); drop those "
                "flags to resume, or use a new --train_dir"
            )
        return config.validate()

    def scored_model(self, config, directory):
        """The model --eval_model picks among those a run holds."""
        wanted = self.eval_model or "student"
        if wanted in config.models:
            return wanted
        if self.eval_model is None and len(config.models) == 1:
            return config.models[0]
        raise UserError(f"--eval_model={wanted}: {directory} holds only {', '.join(config.models)}")


def teacher_differences(teacher_config, config):
    """Settings of `config`'s teacher that differ from those of `teacher_config`."""
    family = type(config.model_params)
    names = set(TEACHER_FIELDS) | {
        field.name for field in dataclasses.fields(family) if not field.metadata.get("student_only")
    }
    return "; ".join(
        f"--{name}: teacher {before!r}, this run {after!r}"
        for name, before, after in sorted(teacher_config.architecture_differences(config, names))
    )
