"""VGGish, the AudioSet audio network, from TensorFlow core ops with the variable
names of the release's vggish_model.ckpt (TensorFlow's older one-file V1 format).

Layers: 3x3 convolutions (stride 1, SAME, ReLU) conv1, pool, conv2, pool,
conv3/conv3_1, conv3/conv3_2, pool, conv4/conv4_1, conv4/conv4_2, pool (2x2 max,
stride 2, SAME); flatten; fc1/fc1_1 and fc1/fc1_2 (ReLU); fc2 (no activation),
the 128-value embedding. Widths are read from the checkpoint and their chain
checked, so a file that is not VGGish is named with what is wrong.
"""

import tensorflow as tf

from fewer_frames.features import model_files
from fewer_frames.features.log_mel import EXAMPLE_FRAMES, MEL_BANDS
from fewer_frames.features.release_pca import AUDIO_SIZE
from fewer_frames.system.errors import UserError

SCOPE = "vggish"
POOL = "pool"
CONVOLUTIONS = (
    "conv1",
    POOL,
    "conv2",
    POOL,
    "conv3/conv3_1",
    "conv3/conv3_2",
    POOL,
    "conv4/conv4_1",
    "conv4/conv4_2",
    POOL,
)
FULLY_CONNECTED = ("fc1/fc1_1", "fc1/fc1_2", "fc2")
KERNEL = 3


def _shapes(path):
    try:
        return tf.train.load_checkpoint(path).get_variable_to_shape_map()
    except (tf.errors.OpError, ValueError) as error:
        raise UserError(f"{path}: not a TensorFlow checkpoint ({error})") from error


def layer_shapes(path):
    """{layer scope: (weights shape, biases shape)} of the checkpoint at `path`,
    checked against VGGish's architecture."""
    shapes = _shapes(path)
    found = {}
    channels, height, width = 1, EXAMPLE_FRAMES, MEL_BANDS
    layers = [name for name in CONVOLUTIONS if name != POOL] + list(FULLY_CONNECTED)
    for name in CONVOLUTIONS + FULLY_CONNECTED:
        if name == POOL:
            height, width = -(-height // 2), -(-width // 2)
            continue
        weights = shapes.get(f"{SCOPE}/{name}/weights")
        biases = shapes.get(f"{SCOPE}/{name}/biases")
        if weights is None or biases is None:
            raise UserError(
                f"{path}: no variable {SCOPE}/{name}/"
                f"{'weights' if weights is None else 'biases'}: not a VGGish checkpoint "
                f"(it holds {len(shapes)} variables)"
            )
        if name in FULLY_CONNECTED:
            inputs = channels * height * width if name == FULLY_CONNECTED[0] else channels
            expected_prefix = [inputs]
        else:
            expected_prefix = [KERNEL, KERNEL, channels]
        if (
            list(weights[:-1]) != expected_prefix
            or list(biases) != [weights[-1]]
            or (name == layers[-1] and weights[-1] != AUDIO_SIZE)
        ):
            raise UserError(
                f"{path}: {SCOPE}/{name} has weights {list(weights)} and biases "
                f"{list(biases)}; VGGish's take {expected_prefix} inputs"
                + (f" and give {AUDIO_SIZE}" if name == layers[-1] else "")
            )
        channels = weights[-1]
        found[name] = (weights, biases)
    return found


def embeddings(examples, checkpoint_path):
    """[N, 96, 64] log-mel examples to [N, 128] VGGish embeddings; returns them and
    a function restoring the checkpoint into a session."""
    shapes = layer_shapes(checkpoint_path)
    variables = {}

    def parameters(name):
        weights_shape, biases_shape = shapes[name]
        with tf.compat.v1.variable_scope(name):
            weights = tf.compat.v1.get_variable("weights", weights_shape, trainable=False)
            biases = tf.compat.v1.get_variable("biases", biases_shape, trainable=False)
        variables.update({variable.op.name: variable for variable in (weights, biases)})
        return weights, biases

    with tf.compat.v1.variable_scope(SCOPE):
        net = tf.expand_dims(tf.identity(examples, name="input_features"), -1)
        for name in CONVOLUTIONS:
            if name == POOL:
                net = tf.nn.max_pool2d(net, 2, 2, "SAME")
                continue
            weights, biases = parameters(name)
            net = tf.nn.relu(tf.nn.conv2d(net, weights, 1, "SAME") + biases)
        net = tf.reshape(net, [-1, net.shape[1] * net.shape[2] * net.shape[3]])
        for name in FULLY_CONNECTED:
            weights, biases = parameters(name)
            net = tf.matmul(net, weights) + biases
            if name != FULLY_CONNECTED[-1]:
                net = tf.nn.relu(net)
    saver = tf.compat.v1.train.Saver(variables)

    def restore(session):
        saver.restore(session, checkpoint_path)

    return tf.identity(net, name="embedding"), restore


def checkpoint_path(model_dir):
    return model_files.model_path(model_dir, model_files.VGGISH_CHECKPOINT)
