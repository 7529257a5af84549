"""Independent computations of the released features' recipe (SPEC.md section 13),
in numpy from the model files, for the feature tests to compare against."""

import numpy as np
import tensorflow as tf
from numpy.lib.stride_tricks import sliding_window_view

from fewer_frames.features import video_files


def frames_of_seconds(path, max_frames=300):
    """Decodes every frame; the frame shown at each whole second, by brute force:
    the last frame at or before it (the first frame if none is). Returns those
    frames and their times."""
    av = video_files.import_av()
    with av.open(path) as container:
        decoded = [
            (frame.time, frame.to_ndarray(format="rgb24")) for frame in container.decode(video=0)
        ]
    last_time = decoded[-1][0]
    chosen = []
    for second in range(max_frames):
        if second > last_time:
            break
        shown = [(time, picture) for time, picture in decoded if time <= second] or decoded[:1]
        chosen.append(shown[-1])
    return np.stack([picture for _, picture in chosen]), [time for time, _ in chosen]


def inception_pool(graph_def_path, frames):
    """pool_3/_reshape of each frame, fed one at a time to DecodeJpeg:0 of the
    graph as Google's extractor feeds it."""
    graph_def = tf.compat.v1.GraphDef()
    with open(graph_def_path, "rb") as stream:
        graph_def.ParseFromString(stream.read())
    with tf.Graph().as_default() as graph:
        tf.import_graph_def(graph_def, name="")
        output = graph.get_tensor_by_name("pool_3/_reshape:0")
        with tf.compat.v1.Session() as session:
            return np.concatenate(
                [session.run(output, {"DecodeJpeg:0": frame}) for frame in frames]
            )


def rgb_pca(pool, model_dir):
    """Google's extractor's PCA and whitening, in float64 from the three files."""
    mean = np.load(f"{model_dir}/mean.npy")[:, 0]
    values = np.load(f"{model_dir}/eigenvals.npy")[:1024, 0]
    vectors = np.load(f"{model_dir}/eigenvecs.npy")[:1024]
    return ((pool - mean) @ vectors.T) / np.sqrt(values + 1e-4)


def rgb_codes(features):
    return np.rint((np.clip(features, -2, 2) + 2) * 255 / 4).astype(np.uint8)


def audio_codes(features):
    return ((np.clip(features, -2, 2) + 2) * 255 / 4).astype(np.uint8)


def hertz_to_mel(hertz):
    return 1127.0 * np.log(1.0 + hertz / 700.0)


def log_mel(waveform):
    """VGGish's documented log-mel: 25 ms periodic Hann windows every 10 ms, |FFT|
    of length 512, 64 HTK-mel triangles from 125 to 7500 Hz, ln(x + 0.01)."""
    count = 1 + (len(waveform) - 400) // 160
    frames = waveform[np.arange(400)[None] + 160 * np.arange(count)[:, None]]
    window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(400) / 400)
    magnitude = np.abs(np.fft.rfft(frames * window, 512))
    bin_mels = hertz_to_mel(np.linspace(0, 8000, 257))
    edges = np.linspace(hertz_to_mel(125.0), hertz_to_mel(7500.0), 66)
    weights = np.zeros([257, 64])
    for band in range(64):
        lower, centre, upper = edges[band : band + 3]
        rising = (bin_mels - lower) / (centre - lower)
        falling = (upper - bin_mels) / (upper - centre)
        weights[:, band] = np.maximum(0.0, np.minimum(rising, falling))
    weights[0] = 0.0  # the DC bin carries no band
    return np.log(magnitude @ weights + 0.01)


def vggish_embeddings(checkpoint_path, examples):
    """VGGish in numpy from the checkpoint's variables: [N, 96, 64] to [N, 128]."""
    reader = tf.train.load_checkpoint(checkpoint_path)

    def parameters(scope):
        return (
            reader.get_tensor(f"vggish/{scope}/weights"),
            reader.get_tensor(f"vggish/{scope}/biases"),
        )

    def conv(net, scope):
        weights, biases = parameters(scope)
        padded = np.pad(net, ((0, 0), (1, 1), (1, 1), (0, 0)))
        windows = sliding_window_view(padded, (3, 3), axis=(1, 2))  # N, H, W, C, 3, 3
        return np.maximum(np.einsum("nhwcij,ijco->nhwo", windows, weights) + biases, 0)

    def pool(net):
        n, height, width, channels = net.shape
        return net.reshape(n, height // 2, 2, width // 2, 2, channels).max(axis=(2, 4))

    net = examples[..., None].astype(np.float64)
    for block in (
        ["conv1"],
        ["conv2"],
        ["conv3/conv3_1", "conv3/conv3_2"],
        ["conv4/conv4_1", "conv4/conv4_2"],
    ):
        for scope in block:
            net = conv(net, scope)
        net = pool(net)
    net = net.reshape(len(net), -1)
    for scope in ("fc1/fc1_1", "fc1/fc1_2"):
        weights, biases = parameters(scope)
        net = np.maximum(net @ weights + biases, 0)
    weights, biases = parameters("fc2")
    return net @ weights + biases


def audio_pca(embeddings, model_dir):
    with np.load(f"{model_dir}/vggish_pca_params.npz") as params:
        means = params["pca_means"].reshape(-1)
        vectors = params["pca_eigen_vectors"]
    return (embeddings - means) @ vectors.T


def audio_features(waveform, steps, model_dir):
    """The audio features of `steps` seconds of a 16 kHz waveform (padded with
    silence): example i is log-mel frames 100 i to 100 i + 95."""
    needed = (100 * (steps - 1) + 95) * 160 + 400
    waveform = np.pad(waveform[:needed], (0, max(0, needed - len(waveform))))
    spectrogram = log_mel(waveform.astype(np.float64))
    examples = np.stack([spectrogram[100 * step : 100 * step + 96] for step in range(steps)])
    return audio_pca(vggish_embeddings(f"{model_dir}/vggish_model.ckpt", examples), model_dir)
