"""Model files with the release's names, formats and shapes and random weights, for
measuring feature extraction where the real files are absent (the cost of a
network does not depend on its weights) and for the tests.

- classify_image_graph_def.pb: the release's input chain (DecodeJpeg/contents,
  DecodeJpeg, Cast, ExpandDims, the legacy ResizeBilinear to 299x299, Sub 128,
  Mul 1/128), then a network ("inception_v3": the architecture of the release,
  about 5.7 billion multiply-adds per frame; "small": a cheap one), then pool_3
  [1, 1, 1, 2048] and pool_3/_reshape [1, 2048].
- mean.npy, eigenvals.npy, eigenvecs.npy: a PCA of 2048 values.
- vggish_model.ckpt (one-file V1 checkpoint, the release's variable names) at
  VGGish's real widths or small ones, and vggish_pca_params.npz.
"""

import io
import os

import numpy as np
import tensorflow as tf
from tensorflow.core.protobuf import saver_pb2

from fewer_frames.features import model_files, vggish
from fewer_frames.features.release_pca import AUDIO_SIZE, INCEPTION_SIZE, RGB_SIZE

IMAGE_SIZE = 299
# VGGish's widths in the order of vggish.CONVOLUTIONS (pools skipped) and FULLY_CONNECTED.
VGGISH_WIDTHS = {
    "real": (64, 128, 256, 256, 512, 512, 4096, 4096),
    "small": (4, 4, 8, 8, 8, 8, 16, 16),
}


class _Layers:
    """Convolutions with random constant weights (He-scaled, so values stay finite)."""

    def __init__(self, rng):
        self.rng = rng

    def conv(self, net, outputs, height, width=None, stride=1, padding="SAME"):
        width = width or height
        inputs = net.shape[-1]
        scale = np.sqrt(2.0 / (height * width * inputs))
        kernel = self.rng.normal(0, scale, [height, width, inputs, outputs]).astype(np.float32)
        net = tf.nn.conv2d(net, tf.constant(kernel), stride, padding)
        return tf.nn.relu(net + tf.constant(self.rng.normal(0, 0.1, outputs).astype(np.float32)))

    def chain(self, net, *convs):
        for conv in convs:
            net = self.conv(net, *conv)
        return net


def _pool(net, kind, size=3, stride=1, padding="SAME"):
    pool = tf.nn.max_pool2d if kind == "max" else tf.nn.avg_pool2d
    return pool(net, size, stride, padding)


def inception_v3_network(scaled, rng):
    """Inception-v3 (Szegedy et al. 2016) as the 2015 graph has it, from the scaled
    [1, 299, 299, 3] batch to the [1, 8, 8, 2048] map before pool_3."""
    layers = _Layers(rng)
    net = layers.chain(scaled, (32, 3, 3, 2, "VALID"), (32, 3, 3, 1, "VALID"), (64, 3))  # 147x147
    net = _pool(net, "max", 3, 2, "VALID")
    net = layers.chain(net, (80, 1, 1, 1, "VALID"), (192, 3, 3, 1, "VALID"))
    net = _pool(net, "max", 3, 2, "VALID")  # 35x35x192
    for pool_width in (32, 64, 64):
        net = tf.concat(
            [
                layers.conv(net, 64, 1),
                layers.chain(net, (48, 1), (64, 5)),
                layers.chain(net, (64, 1), (96, 3), (96, 3)),
                layers.conv(_pool(net, "avg"), pool_width, 1),
            ],
            -1,
        )
    net = tf.concat(
        [
            layers.conv(net, 384, 3, 3, 2, "VALID"),
            layers.chain(net, (64, 1), (96, 3), (96, 3, 3, 2, "VALID")),
            _pool(net, "max", 3, 2, "VALID"),
        ],
        -1,
    )  # 17x17x768
    for middle in (128, 160, 160, 192):
        net = tf.concat(
            [
                layers.conv(net, 192, 1),
                layers.chain(net, (middle, 1), (middle, 1, 7), (192, 7, 1)),
                layers.chain(
                    net, (middle, 1), (middle, 7, 1), (middle, 1, 7), (middle, 7, 1), (192, 1, 7)
                ),
                layers.conv(_pool(net, "avg"), 192, 1),
            ],
            -1,
        )
    net = tf.concat(
        [
            layers.chain(net, (192, 1), (320, 3, 3, 2, "VALID")),
            layers.chain(net, (192, 1), (192, 1, 7), (192, 7, 1), (192, 3, 3, 2, "VALID")),
            _pool(net, "max", 3, 2, "VALID"),
        ],
        -1,
    )  # 8x8x1280
    for _ in range(2):
        wide = layers.conv(net, 384, 1)
        deep = layers.chain(net, (448, 1), (384, 3))
        net = tf.concat(
            [
                layers.conv(net, 320, 1),
                layers.conv(wide, 384, 1, 3),
                layers.conv(wide, 384, 3, 1),
                layers.conv(deep, 384, 1, 3),
                layers.conv(deep, 384, 3, 1),
                layers.conv(_pool(net, "avg"), 192, 1),
            ],
            -1,
        )  # 8x8x2048
    return net


def small_network(scaled, rng):
    """A cheap network to the same kind of map: 2048 channels from a coarse grid."""
    layers = _Layers(rng)
    net = _pool(scaled, "avg", 13, 13, "VALID")  # 23x23
    return layers.chain(net, (32, 3, 3, 2, "VALID"), (INCEPTION_SIZE, 3))


NETWORKS = {"inception_v3": inception_v3_network, "small": small_network}


def inception_graph_def(network="small", seed=0):
    """A GraphDef with the release's names around `network` (a NETWORKS key)."""
    rng = np.random.default_rng(seed)
    graph = tf.Graph()
    with graph.as_default():
        contents = tf.compat.v1.placeholder(tf.string, [], name="DecodeJpeg/contents")
        image = tf.io.decode_jpeg(contents, channels=3, name="DecodeJpeg")
        batch = tf.expand_dims(tf.cast(image, tf.float32, name="Cast"), 0, name="ExpandDims")
        resized = tf.raw_ops.ResizeBilinear(
            images=batch, size=[IMAGE_SIZE, IMAGE_SIZE], name="ResizeBilinear"
        )
        scaled = tf.multiply(tf.subtract(resized, 128.0, name="Sub"), 1 / 128.0, name="Mul")
        net = NETWORKS[network](scaled, rng)
        pool = tf.nn.avg_pool2d(net, net.shape[1:3], 1, "VALID", name="pool_3")
        tf.reshape(pool, [1, INCEPTION_SIZE], name="pool_3/_reshape")
    return graph.as_graph_def()


def write_rgb_files(model_dir, network="small", seed=0, components=RGB_SIZE):
    """The Inception graph and a PCA (mean, eigenvalues, eigenvectors) in `model_dir`."""
    rng = np.random.default_rng(seed)
    tf.io.gfile.makedirs(model_dir)
    path = model_files.model_path(model_dir, model_files.INCEPTION_GRAPH)
    with tf.io.gfile.GFile(path, "wb") as stream:
        stream.write(inception_graph_def(network, seed).SerializeToString())
    vectors = np.linalg.qr(rng.normal(size=[INCEPTION_SIZE, INCEPTION_SIZE]))[0][:components]
    arrays = {
        model_files.RGB_PCA_MEAN: rng.uniform(0, 0.5, [INCEPTION_SIZE, 1]),
        model_files.RGB_PCA_EIGENVALUES: np.sort(rng.uniform(0.01, 0.2, [components, 1]))[::-1],
        model_files.RGB_PCA_EIGENVECTORS: vectors,
    }
    for name, array in arrays.items():
        with tf.io.gfile.GFile(model_files.model_path(model_dir, name), "wb") as stream:
            np.save(stream, array.astype(np.float32))


def write_audio_files(model_dir, size="small", seed=0):
    """A VGGish checkpoint (V1, one file) and its PCA parameters in `model_dir`."""
    rng = np.random.default_rng(seed)
    tf.io.gfile.makedirs(model_dir)
    widths = iter(VGGISH_WIDTHS[size])
    graph = tf.Graph()
    with graph.as_default():
        with tf.compat.v1.variable_scope(vggish.SCOPE):
            inputs = 1
            for name in vggish.CONVOLUTIONS + vggish.FULLY_CONNECTED:
                if name == vggish.POOL:
                    continue
                outputs = AUDIO_SIZE if name == vggish.FULLY_CONNECTED[-1] else next(widths)
                if name in vggish.FULLY_CONNECTED:
                    if name == vggish.FULLY_CONNECTED[0]:
                        inputs *= 6 * 4  # the 96x64 input after four 2x2 pools
                    shape = [inputs, outputs]
                else:
                    shape = [vggish.KERNEL, vggish.KERNEL, inputs, outputs]
                scale = np.sqrt(2.0 / np.prod(shape[:-1]))
                with tf.compat.v1.variable_scope(name):
                    tf.compat.v1.get_variable(
                        "weights", initializer=rng.normal(0, scale, shape).astype(np.float32)
                    )
                    tf.compat.v1.get_variable(
                        "biases", initializer=rng.normal(0, 0.1, [outputs]).astype(np.float32)
                    )
                inputs = outputs
        saver = tf.compat.v1.train.Saver(write_version=saver_pb2.SaverDef.V1)
        with tf.compat.v1.Session() as session:
            session.run(tf.compat.v1.global_variables_initializer())
            saver.save(
                session,
                os.path.abspath(model_files.model_path(model_dir, model_files.VGGISH_CHECKPOINT)),
                write_meta_graph=False,
                write_state=False,
            )
    vectors = np.linalg.qr(rng.normal(size=[AUDIO_SIZE, AUDIO_SIZE]))[0] * 0.05
    path = model_files.model_path(model_dir, model_files.VGGISH_PCA)
    buffer = io.BytesIO()
    np.savez(buffer, pca_eigen_vectors=vectors, pca_means=rng.normal(0, 0.1, [AUDIO_SIZE, 1]))
    with tf.io.gfile.GFile(path, "wb") as stream:
        stream.write(buffer.getvalue())
