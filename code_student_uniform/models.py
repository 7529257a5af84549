"""The contract every model follows."""


class BaseModel:
    """A model maps a batch of inputs to (representation, {"predictions": ...}).

    `create_model` builds the teacher over all frames. `create_model_inference`
    builds the student over the frames a selection rule picked: by default the
    very same architecture; a family overrides `student_params` only where the
    student's shape needs other settings (e.g. fewer chunks).
    """

    def create_model(self, model_input, vocab_size, num_frames, **params):
        raise NotImplementedError()

    def student_params(self, params):
        """Keyword arguments that turn the teacher's settings into the student's."""
        return params

    def create_model_inference(self, model_input, vocab_size, num_frames, **params):
        return self.create_model(model_input, vocab_size, num_frames, **self.student_params(params))
