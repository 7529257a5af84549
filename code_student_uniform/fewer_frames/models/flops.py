"""Analytic FLOPs per video of the teacher and the student of a run's config.

Counted from the matmul shapes of the model (2 per multiply-add; elementwise
ops are left out), by the model family's `forward_flops` and the classifier's
(base_model.py); a training step is 3x the forward pass (forward, and backward for
activations and weights).
"""

from fewer_frames.models import model_config, video_level_models

# A training step: forward, and backward for activations and for weights.
TRAIN_STEP_PASSES = 3


def model_params(config, student):
    """The `Params` of `config`'s teacher or student."""
    family = model_config.model_class(config.model)
    return family().student_params(config.model_params) if student else config.model_params


def flops_per_video(config, student):
    """Analytic forward FLOPs of one video through the teacher or the student of
    `config` (a model_config.ModelConfig), for every model family that counts them."""
    family = model_config.model_class(config.model)
    params = model_params(config, student)
    frames = config.selection().frame_budget if student else config.max_num_frames
    representation, size = family.forward_flops(params, frames, config.feature_sizes)
    classifier = video_level_models.classifier_class(params.video_level_classifier_model)
    return representation + classifier.forward_flops(params, size, config.num_classes)
