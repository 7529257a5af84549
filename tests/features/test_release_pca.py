"""The releases' quantisations, worked by hand: RGB rounds, audio truncates."""

import numpy as np
import tensorflow as tf

from fewer_frames.features import release_pca


def test_rgb_rounds_and_audio_truncates():
    # (v + 2) * 255 / 4: -2.5 -> clipped 0; 0.02 -> 128.775; 0.0 -> 127.5; 1.99 -> 254.36; 3 -> 255
    values = tf.constant([-2.5, 0.02, 0.0, 1.99, 3.0])
    with tf.compat.v1.Session() as session:
        rounded, truncated = session.run(
            [
                release_pca.quantize(values, rounded=True),
                release_pca.quantize(values, rounded=False),
            ]
        )
    assert rounded.tolist() == [0, 129, 128, 254, 255]  # 127.5 rounds to even, as numpy's rint
    assert truncated.tolist() == [0, 128, 127, 254, 255]
    assert rounded.dtype == truncated.dtype == np.uint8
