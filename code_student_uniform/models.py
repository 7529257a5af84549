"""The contract every model follows, and how a model declares its hyperparameters."""

import dataclasses

from runtime import UserError


@dataclasses.dataclass(frozen=True)
class Hyperparameter:
    """One keyword argument of a model: its default, and the flag that sets it.

    The declaration is the one place a default is written: the flag takes it,
    and the model falls back to it when the argument is not given.
    """

    name: str
    default: object
    help: str
    flag: str = ""

    @property
    def flag_name(self):
        return self.flag or self.name


class BaseModel:
    """A model maps a batch of inputs to {"predictions": [B, vocab_size]}; a model
    over frames also gives its "representation" [B, R] (what L_rep compares).

    `create_model` builds the teacher over all frames. `create_student` builds
    the student over the frames a selection rule picked: by default the very
    same architecture; a family overrides `student_params` only where the
    student's shape needs other settings (e.g. fewer chunks).

    `hyperparameters` declares the family's keyword arguments (see
    `Hyperparameter`); `split_params` fills in their defaults. `forward_flops`
    and `activation_values` give the family's cost per video, so that the FLOP
    count (flops.py), the memory count (memory.py), the benchmark and the Table 1
    runner work for any family that defines them.
    """

    hyperparameters = ()

    def create_model(self, model_input, vocab_size, num_frames, **params):
        raise NotImplementedError()

    def student_params(self, params):
        """Keyword arguments that turn the teacher's settings into the student's."""
        return params

    def create_student(self, model_input, vocab_size, num_frames, **params):
        return self.create_model(model_input, vocab_size, num_frames, **self.student_params(params))

    @classmethod
    def forward_flops(cls, params, frames, feature_sizes):
        """(forward matmul FLOPs of one video's representation over `frames` frames,
        the representation's size), for flops.py; `params` are the teacher's or
        the student's keyword arguments (see `student_params`)."""
        raise UserError(f"no FLOP count for --model={cls.__name__}: define forward_flops")

    @classmethod
    def activation_values(cls, params, frames):
        """Values the backward pass keeps for one video's representation over
        `frames` frames (its frames themselves not counted), for memory.py."""
        raise UserError(f"no activation count for --model={cls.__name__}")

    @classmethod
    def defaults(cls):
        """{keyword argument: default} of every declared hyperparameter."""
        return {parameter.name: parameter.default for parameter in cls.hyperparameters}

    @classmethod
    def split_params(cls, params):
        """(the declared hyperparameters, defaults filled where absent or None;
        the other keyword arguments, for the classifier and the builder)."""
        own = cls.defaults()
        own.update(
            {key: value for key, value in params.items() if key in own and value is not None}
        )
        rest = {key: value for key, value in params.items() if key not in own}
        return own, rest
