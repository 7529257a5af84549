"""Facts of the YouTube-8M records: each release's id feature and class count, the
8-bit quantisation of the features, and the feature names and sizes."""

import numpy as np
import tensorflow as tf

from fewer_frames.system.errors import UserError

# Quantisation range of the YouTube-8M frame features.
QUANTIZE_MAX = 2.0
QUANTIZE_MIN = -2.0

# id feature key and number of classes of each YouTube-8M release.
DATASET_VERSIONS = {
    "2017": {"id_feature": "video_id", "num_classes": 4716},
    "2018": {"id_feature": "id", "num_classes": 3862},
}


def dataset_version_info(version, num_classes=None):
    """Returns (id_feature, num_classes) for a dataset version string.

    `num_classes`, when given and positive, overrides the version's class count.
    """
    version = str(version)
    if version not in DATASET_VERSIONS:
        raise UserError(
            f"Unknown dataset version {version!r}; known versions: {sorted(DATASET_VERSIONS)}"
        )
    info = DATASET_VERSIONS[version]
    return info["id_feature"], (num_classes if num_classes else info["num_classes"])


def _range_and_bias(max_quantized_value, min_quantized_value):
    """The quantisation's value range and the value of code 0 (range/512 + min)."""
    quantized_range = max_quantized_value - min_quantized_value
    return quantized_range, quantized_range / 512.0 + min_quantized_value


def dequantize_codes(codes, max_quantized_value=QUANTIZE_MAX, min_quantized_value=QUANTIZE_MIN):
    """uint8 codes to float32, q * range/255 + range/512 + min, in one op (one pass
    over memory, where cast, multiply and add would take three)."""
    quantized_range, lowest = _range_and_bias(max_quantized_value, min_quantized_value)
    return tf.quantization.dequantize(
        tf.bitcast(codes, tf.quint8), lowest, lowest + quantized_range, mode="MIN_COMBINED"
    )


def quantize(values, max_quantized_value=QUANTIZE_MAX, min_quantized_value=QUANTIZE_MIN):
    """Numpy inverse of `dequantize_codes`: floats to the nearest uint8 code."""
    quantized_range, bias = _range_and_bias(max_quantized_value, min_quantized_value)
    codes = np.rint((np.asarray(values, np.float64) - bias) * 255.0 / quantized_range)
    return np.clip(codes, 0, 255).astype(np.uint8)


def parse_feature_list(feature_names, feature_sizes):
    """Parses the comma-separated --feature_names / --feature_sizes flags.

    Accepts strings or sequences; returns (list of names, list of ints).
    """
    if isinstance(feature_names, str):
        feature_names = [name.strip() for name in feature_names.split(",") if name.strip()]
    if isinstance(feature_sizes, str):
        feature_sizes = [size.strip() for size in feature_sizes.split(",") if size.strip()]
    try:
        feature_sizes = [int(size) for size in feature_sizes]
    except ValueError as error:
        raise UserError(f"--feature_sizes must be integers, got {feature_sizes!r}") from error
    if len(feature_names) != len(feature_sizes):
        raise UserError(
            f"--feature_names has {len(feature_names)} entries ({', '.join(feature_names)}) but "
            f"--feature_sizes has {len(feature_sizes)} ({', '.join(map(str, feature_sizes))}); "
            "give one size per feature"
        )
    if not feature_names:
        raise UserError("--feature_names is empty; name at least one feature, e.g. 'rgb, audio'")
    if any(size <= 0 for size in feature_sizes):
        raise UserError(f"--feature_sizes must be positive, got {feature_sizes}")
    return list(feature_names), feature_sizes
