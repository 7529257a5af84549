"""The releases' PCAs and 8-bit quantisations, as graph ops.

RGB (yt8m_pca.tgz): ((x - mean) . eigenvecs[:1024].T) / sqrt(eigenvals[:1024] + 1e-4),
clipped to [-2, 2] and rounded, round((v + 2) * 255 / 4).
Audio (vggish_pca_params.npz): pca_eigen_vectors . (e - pca_means), clipped to
[-2, 2] and truncated, int((v + 2) * 255 / 4): the VGGish release truncates where
the RGB side rounds.
"""

import io

import numpy as np
import tensorflow as tf

from fewer_frames.features import model_files
from fewer_frames.inputs.yt8m_format import QUANTIZE_MAX, QUANTIZE_MIN
from fewer_frames.system.errors import UserError

INCEPTION_SIZE = 2048
RGB_SIZE = 1024
AUDIO_SIZE = 128
_WHITENING_EPSILON = 1e-4


def _load_npy(path):
    try:
        with tf.io.gfile.GFile(path, "rb") as stream:
            return np.load(io.BytesIO(stream.read()), allow_pickle=False)
    except ValueError as error:
        raise UserError(f"{path}: not a numpy array file ({error})") from error


def _check_shape(path, array, expected):
    """`expected`: a shape whose None entries accept any size of at least RGB_SIZE."""
    fits = array.ndim == len(expected) and all(
        size >= RGB_SIZE if want is None else size == want
        for size, want in zip(array.shape, expected, strict=False)
    )
    if not fits:
        wanted = "x".join(f"K>={RGB_SIZE}" if want is None else str(want) for want in expected)
        raise UserError(f"{path}: shape {list(array.shape)}, expected {wanted}")


def load_rgb_pca(model_dir):
    """(mean [2048], eigenvectors [2048, 1024], scales [1024]) from the three files of
    yt8m_pca.tgz, shapes checked."""
    paths = {
        name: model_files.model_path(model_dir, name)
        for name in (
            model_files.RGB_PCA_MEAN,
            model_files.RGB_PCA_EIGENVALUES,
            model_files.RGB_PCA_EIGENVECTORS,
        )
    }
    mean = _load_npy(paths[model_files.RGB_PCA_MEAN])
    _check_shape(paths[model_files.RGB_PCA_MEAN], mean, (INCEPTION_SIZE, 1))
    values = _load_npy(paths[model_files.RGB_PCA_EIGENVALUES])
    _check_shape(paths[model_files.RGB_PCA_EIGENVALUES], values, (None, 1))
    vectors = _load_npy(paths[model_files.RGB_PCA_EIGENVECTORS])
    _check_shape(paths[model_files.RGB_PCA_EIGENVECTORS], vectors, (None, INCEPTION_SIZE))
    values = values[:RGB_SIZE, 0].astype(np.float64)
    if (values + _WHITENING_EPSILON <= 0).any():
        raise UserError(f"{paths[model_files.RGB_PCA_EIGENVALUES]}: negative eigenvalues")
    return (
        mean[:, 0].astype(np.float32),
        vectors[:RGB_SIZE].T.astype(np.float32),
        (1.0 / np.sqrt(values + _WHITENING_EPSILON)).astype(np.float32),
    )


def load_audio_pca(model_dir):
    """(means [128], eigenvectors [128, 128]) from vggish_pca_params.npz, checked."""
    path = model_files.model_path(model_dir, model_files.VGGISH_PCA)
    try:
        with tf.io.gfile.GFile(path, "rb") as stream, np.load(io.BytesIO(stream.read())) as npz:
            arrays = {key: npz[key] for key in npz.files}
    except (ValueError, OSError) as error:
        raise UserError(f"{path}: not a numpy .npz file ({error})") from error
    for key in ("pca_eigen_vectors", "pca_means"):
        if key not in arrays:
            raise UserError(f"{path}: no array {key!r} (it holds {sorted(arrays)})")
    means = arrays["pca_means"].reshape(-1)
    _check_shape(f"{path} pca_eigen_vectors", arrays["pca_eigen_vectors"], (AUDIO_SIZE, AUDIO_SIZE))
    _check_shape(f"{path} pca_means", means, (AUDIO_SIZE,))
    return means.astype(np.float32), arrays["pca_eigen_vectors"].astype(np.float32)


def rgb_features(embeddings, pca):
    """[N, 2048] pool_3 values to the [N, 1024] whitened PCA features (float32)."""
    mean, vectors, scales = (tf.constant(array) for array in pca)
    return tf.matmul(embeddings - mean, vectors) * scales


def audio_features(embeddings, pca):
    """[N, 128] VGGish embeddings to their [N, 128] PCA features (float32)."""
    means, vectors = (tf.constant(array) for array in pca)
    return tf.matmul(embeddings - means, vectors, transpose_b=True)


def quantize(features, rounded):
    """Floats to the releases' uint8 codes: clip to [-2, 2], scale to [0, 255], then
    round (RGB) or truncate (audio)."""
    clipped = tf.clip_by_value(features, QUANTIZE_MIN, QUANTIZE_MAX)
    scaled = (clipped - QUANTIZE_MIN) * (255.0 / (QUANTIZE_MAX - QUANTIZE_MIN))
    return tf.cast(tf.round(scaled) if rounded else tf.floor(scaled), tf.uint8)
