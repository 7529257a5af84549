"""The contract every model follows, how a model declares its hyperparameters, and
the lookup of a class by its name (a flag's value)."""

import dataclasses

from fewer_frames.system.errors import UserError

# What every model gets from model_graph.py besides its hyperparameters, whether
# it uses it or not.
BUILD_ARGUMENTS = ("is_training", "feature_sizes")


def hyperparameter(default, help, shapes=True, student_only=False):
    """A field of a family's `Params`: the one place its default is written (the
    flag of the same name takes it; the model falls back to it).

    `shapes=False` marks a setting that changes how the graph computes, not the
    variables it holds: a run saved with one value resumes with another.
    `student_only=True` marks one that only the student's graph reads (a serial
    run's teacher need not match it).
    """
    metadata = {"help": help, "shapes": shapes, "student_only": student_only}
    return dataclasses.field(default=default, metadata=metadata)


@dataclasses.dataclass(frozen=True)
class NoParams:
    """A family without hyperparameters."""


class BaseModel:
    """A model maps a batch of inputs to {"predictions": [B, vocab_size]}; a model
    over frames also gives its "representation" [B, R] (what L_rep compares).

    `create_model` builds the teacher over all frames. `create_student` builds
    the student over the frames a selection rule picked: by default the very
    same architecture; a family overrides `student_params` only where the
    student's shape needs other settings (e.g. fewer chunks).

    `Params` is the family's frozen dataclass of hyperparameters (fields made
    with `hyperparameter`): the field names are the flags' and the keyword
    arguments' names, and `ModelConfig.model_params` holds one. `params` reads
    keyword arguments into it. `forward_flops` and `activation_values` give the
    family's cost per video, so that the FLOP count (flops.py), the memory count
    (memory_estimate.py), the benchmark and the Table 1 runner work for any family that
    defines them.
    """

    Params = NoParams

    def create_model(self, model_input, vocab_size, num_frames, **params):
        raise NotImplementedError()

    def student_params(self, params):
        """The student's `Params`, from the teacher's."""
        return params

    def create_student(self, model_input, vocab_size, num_frames, **arguments):
        build = {name: arguments.pop(name) for name in BUILD_ARGUMENTS if name in arguments}
        student = self.student_params(self.params(**arguments))
        return self.create_model(
            model_input, vocab_size, num_frames, **build, **dataclasses.asdict(student)
        )

    @classmethod
    def params(cls, **values):
        """The family's `Params` from keyword arguments (None or absent: the
        default). A name the family does not declare (a typo, another family's
        setting) is an error, not silently dropped."""
        known = [field.name for field in dataclasses.fields(cls.Params)]
        unknown = sorted(set(values) - set(known))
        if unknown:
            raise UserError(
                f"{cls.__name__}: unknown keyword argument(s) {', '.join(unknown)}; it takes "
                f"{', '.join(known) or 'none'}"
            )
        return cls.Params(**{name: value for name, value in values.items() if value is not None})

    @classmethod
    def forward_flops(cls, params, frames, feature_sizes):
        """(forward matmul FLOPs of one video's representation over `frames` frames,
        the representation's size), for flops.py; `params` are the teacher's or
        the student's `Params` (see `student_params`)."""
        raise UserError(f"no FLOP count for --model={cls.__name__}: define forward_flops")

    @classmethod
    def activation_values(cls, params, frames):
        """Values the backward pass keeps for one video's representation over
        `frames` frames (its frames themselves not counted), for memory_estimate.py."""
        raise UserError(f"no activation count for --model={cls.__name__}")

    @classmethod
    def reference_matmul(cls, params, batch_size, frames, feature_sizes):
        """(rows, inner, columns) of a matmul as large as the model's main one, the
        benchmark's yardstick: by default the frames times a layer as wide as the
        representation."""
        size = cls.forward_flops(params, frames, feature_sizes)[1]
        return batch_size * frames, sum(feature_sizes), size


def shaping_names(params_class):
    """The names of the hyperparameters that shape a checkpoint's variables."""
    return {
        field.name
        for field in dataclasses.fields(params_class)
        if field.metadata.get("shapes", True)
    }


def find_class_by_name(name, modules, kind="model"):
    """The class called `name` in one of `modules` (settings dataclasses, such as a
    model's `Params`, are not among them); the error lists what exists."""
    for module in modules:
        found = getattr(module, name, None)
        if isinstance(found, type) and not dataclasses.is_dataclass(found):
            return found
    available = sorted(
        attr
        for module in modules
        for attr, value in vars(module).items()
        if isinstance(value, type)
        and not dataclasses.is_dataclass(value)
        and not attr.startswith("Base")
        and attr[0].isupper()
        and value.__module__ == module.__name__
    )
    raise UserError(f"Unknown {kind} {name!r}; available: {', '.join(available)}")
