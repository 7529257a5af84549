"""Device memory of a parallel training step, and the largest batch per tower.

Weights: every trainable value of teacher and student (counted from the built
graph) takes four float32 copies: the weight, its gradient and Adam's two
slots. Activations, per video, for the H-RNN (the paper's model) are counted
from its shapes: what the backward pass keeps of each LSTM step and layer (the
input projection and the four gates before and after their nonlinearity, the
cell state, its tanh and the output: 11 values per unit), the frames (read,
L2-normalised, and the student's copy), and the classifier's gate and expert
activations and outputs. TensorFlow's workspace, fragmentation and the CUDA
context are not counted: `largest_batch` keeps a share of the memory free for
them.
"""

import tensorflow as tf

from fewer_frames.models import flops, model_config, model_graph, video_level_models
from fewer_frames.system.errors import UserError, error_summary

BYTES = 4  # float32
COPIES_PER_WEIGHT = 4  # weight, gradient, Adam's m and v
RESERVED_SHARE = 0.2


# Counts made in this process, by the config's repr (its every setting): a count
# builds the models' graph, seconds at the paper's size, and the memory figures
# ask for it once per figure.
_parameter_counts = {}


def parameter_count(config):
    """Trainable values of the config's models, from a built graph."""
    key = repr(config)
    if key not in _parameter_counts:
        with tf.Graph().as_default():
            tf.compat.v1.set_random_seed(0)  # op determinism, when on, asks for one
            batch = model_graph.placeholder_batch(config)
            model_graph.build_models(config, batch, is_training=True)
            variables = tf.compat.v1.trainable_variables()
            _parameter_counts[key] = sum(variable.shape.num_elements() for variable in variables)
    return _parameter_counts[key]


def weight_bytes(config):
    return parameter_count(config) * COPIES_PER_WEIGHT * BYTES


def activation_bytes_per_video(config):
    """Values kept for the backward pass of one video through teacher and student:
    the frames (read, L2-normalised, the student's copy), then each model's by its
    family and its classifier (base_model.py)."""
    family = model_config.model_class(config.model)
    width = sum(config.feature_sizes)
    values = 2 * config.max_num_frames * width  # the frames as read and L2-normalised
    models = []
    if "teacher" in config.models:
        models.append((config.max_num_frames, flops.model_params(config, student=False)))
    if "student" in config.models:
        frames = config.selection().frame_budget
        values += frames * width  # the student's frames
        models.append((frames, flops.model_params(config, student=True)))
    for frames, params in models:
        classifier = video_level_models.classifier_class(params.video_level_classifier_model)
        values += family.activation_values(params, frames)
        values += classifier.activation_values(params, config.num_classes)
    return values * BYTES


def largest_batch(config, device_bytes, reserved_share=RESERVED_SHARE):
    """The most videos per tower whose step fits in `device_bytes`."""
    free = device_bytes * (1 - reserved_share) - weight_bytes(config)
    return max(int(free // activation_bytes_per_video(config)), 0)


def out_of_memory_error(error, config, batch_size, towers):
    """The UserError for TensorFlow's out-of-memory `error` in a training step:
    the batch per tower and what memory_estimate.py counts for it."""
    per_tower = batch_size // max(towers, 1)
    gib, mib = 2**30, 2**20
    weights = weight_bytes(config)  # builds the models' graph once
    counted = f"{weights / gib:.2f} GiB of weights (with gradients and Adam's slots)"
    try:
        per_video = activation_bytes_per_video(config)
        need = (weights + per_tower * per_video) / gib
        counted += (
            f" and {per_video / mib:.1f} MiB per video, {need:.2f} GiB per tower at this batch"
        )
    except UserError:
        pass  # a family that counts no activations: the weights alone
    return UserError(
        f"out of memory ({error_summary(error)}): a step holds {per_tower} videos per "
        f"tower (--batch_size={batch_size} over {towers} tower(s)); by memory_estimate.py this "
        f"model needs {counted}. `benchmark.py --what=memory` with the same model flags gives the "
        "largest batch per tower for each device size. Lower --batch_size, add towers, or "
        "choose a smaller model"
    )
