"""The 2015 Inception-v3 graph (classify_image_graph_def.pb), run on a batch of frames.

The file takes one image: DecodeJpeg -> Cast -> ExpandDims (a batch of one) ->
ResizeBilinear to 299x299 -> Sub 128 -> Mul 1/128 -> ... -> pool_3 [1, 1, 1, 2048].
A batch of frames of one video (one size) enters in place of ExpandDims' output,
so the graph's own resize and scaling run on every frame of the batch at once.
"""

import tensorflow as tf

from fewer_frames.features import model_files
from fewer_frames.features.release_pca import INCEPTION_SIZE
from fewer_frames.system.errors import UserError

BATCH_ENTRY = "ExpandDims"
OUTPUT = "pool_3"
# The chain between the batch's entry and the network, as the release has it.
PREPROCESSING = ("Cast", BATCH_ENTRY, "ResizeBilinear", "Sub", "Mul")


def load_graph_def(model_dir):
    """The GraphDef of --model_dir's Inception file, with its names checked."""
    path = model_files.model_path(model_dir, model_files.INCEPTION_GRAPH)
    graph_def = tf.compat.v1.GraphDef()
    with tf.io.gfile.GFile(path, "rb") as stream:
        content = stream.read()
    try:
        graph_def.ParseFromString(content)
    except Exception as error:  # protobuf's DecodeError has no stable import path
        raise UserError(f"{path}: not a TensorFlow GraphDef ({error})") from error
    nodes = {node.name: node for node in graph_def.node}
    absent = [name for name in (*PREPROCESSING, OUTPUT) if name not in nodes]
    if absent:
        raise UserError(
            f"{path}: not the 2015 Inception-v3 graph: no node {', '.join(absent)} "
            f"(the file holds {len(nodes)} nodes)"
        )
    resize = nodes["ResizeBilinear"]
    if resize.attr["align_corners"].b or resize.attr["half_pixel_centers"].b:
        raise UserError(f"{path}: ResizeBilinear is not the legacy resize of the release")
    return graph_def


def embeddings(graph_def, frames):
    """pool_3's [N, 2048] values for `frames`, a uint8 [N, height, width, 3] RGB batch."""
    batch = tf.cast(frames, tf.float32)
    (pool,) = tf.import_graph_def(
        graph_def,
        input_map={f"{BATCH_ENTRY}:0": batch},
        return_elements=[f"{OUTPUT}:0"],
        name="inception",
    )
    if pool.shape.rank is not None and pool.shape[-1] not in (None, INCEPTION_SIZE):
        raise UserError(
            f"{model_files.INCEPTION_GRAPH}: pool_3 has {pool.shape[-1]} values, "
            f"the release's {INCEPTION_SIZE}"
        )
    return tf.reshape(pool, [-1, INCEPTION_SIZE])
