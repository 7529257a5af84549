"""Layers from TensorFlow core ops, with TF1/slim-style variable names."""

import tensorflow as tf

BATCH_NORM_DECAY = 0.99
BATCH_NORM_EPSILON = 1e-3


def l2_regularizer(scale):
    return lambda weights: scale * tf.nn.l2_loss(weights)


def dense(inputs, num_outputs, scope, l2_penalty=0.0, use_bias=True, output_dtype=None):
    """A fully connected layer with variables `<scope>/weights` and `<scope>/biases`;
    with `output_dtype`, the product is cast to it before the bias is added (the
    matmul in reduced precision, the sum and what follows in float32)."""
    with tf.compat.v1.variable_scope(scope):
        weights = tf.compat.v1.get_variable(
            "weights",
            [inputs.shape[-1], num_outputs],
            regularizer=l2_regularizer(l2_penalty) if l2_penalty else None,
        )
        outputs = (
            tf.tensordot(inputs, weights, axes=1)
            if inputs.shape.ndims > 2
            else (tf.matmul(inputs, weights))
        )
        if output_dtype is not None:
            outputs = tf.cast(outputs, output_dtype)
        if use_bias:
            biases = tf.compat.v1.get_variable(
                "biases", [num_outputs], initializer=tf.compat.v1.zeros_initializer()
            )
            outputs = outputs + tf.cast(biases, outputs.dtype)
    return outputs


def batch_norm(inputs, scope, is_training, mask=None):
    """Batch normalisation over every axis but the last.

    Training normalises with the batch's statistics (of the entries where `mask`,
    broadcastable to `inputs` without the last axis, is 1: padded frames do not
    count) and updates the moving averages through the UPDATE_OPS collection;
    evaluation uses the moving averages. Variables: `<scope>/beta`, `gamma`,
    `moving_mean`, `moving_variance`.
    """
    size = inputs.shape[-1]
    with tf.compat.v1.variable_scope(scope):
        beta = tf.compat.v1.get_variable("beta", [size], initializer=tf.zeros_initializer())
        gamma = tf.compat.v1.get_variable("gamma", [size], initializer=tf.ones_initializer())
        moving_mean = tf.compat.v1.get_variable(
            "moving_mean", [size], initializer=tf.zeros_initializer(), trainable=False
        )
        moving_variance = tf.compat.v1.get_variable(
            "moving_variance", [size], initializer=tf.ones_initializer(), trainable=False
        )
        if is_training:
            axes = list(range(inputs.shape.ndims - 1))
            weights = tf.ones_like(inputs[..., :1]) if mask is None else mask[..., None]
            mean, variance = tf.nn.weighted_moments(inputs, axes, weights)
            for variable, value in ((moving_mean, mean), (moving_variance, variance)):
                value = tf.cast(value, variable.dtype)  # float32 statistics in any precision
                update = variable.assign_sub((variable - value) * (1 - BATCH_NORM_DECAY))
                tf.compat.v1.add_to_collection(tf.compat.v1.GraphKeys.UPDATE_OPS, update)
        else:
            mean, variance = moving_mean, moving_variance
        mean, variance = tf.cast(mean, inputs.dtype), tf.cast(variance, inputs.dtype)
        return tf.nn.batch_normalization(inputs, mean, variance, beta, gamma, BATCH_NORM_EPSILON)


def context_gating(inputs, scope, is_training):
    """inputs * sigmoid(batch_norm(inputs W)): learned, input-dependent feature gates."""
    with tf.compat.v1.variable_scope(scope):
        gates = dense(inputs, inputs.shape[-1], "gates", use_bias=False)
        gates = tf.sigmoid(batch_norm(gates, "gates_bn", is_training))
    return inputs * gates


def l2_normalize_frames(video_matrix):
    """L2-normalises every frame (last axis); all-zero padding frames stay zero."""
    return tf.nn.l2_normalize(video_matrix, axis=-1)
