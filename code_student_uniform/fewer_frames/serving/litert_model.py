"""A run's scored model as a LiteRT (.tflite) file, and running one.

A LiteRT export is a directory holding `model.tflite` and the run's
`model_flags.json`. The model takes what the model itself sees, after the
reader: `video_matrix`, [batch, frames, features] dequantised frames (for a
student only its selected frames, so a device decodes no other), and
`num_frames`, [batch] int32 (the valid frames of each row); it returns
`predictions`, [batch, classes] scores. The frames' L2 normalisation is inside.

Quantisations: `none` (float32), `dynamic_range` (int8 weights, float32
activations: the converter's default optimisation) and `full_integer` (int8
weights and activations, calibrated on a representative set of videos; inputs
and outputs stay float32). The converter is TensorFlow's; running a file needs
the LiteRT interpreter (`ai-edge-litert`, requirements-litert.txt).
"""

import os

import numpy as np
import tensorflow as tf

from fewer_frames.inputs import readers
from fewer_frames.models import model_graph
from fewer_frames.run_dirs import checkpoints, run_files
from fewer_frames.system import filesystem
from fewer_frames.system.errors import UserError

QUANTIZATIONS = ("none", "dynamic_range", "full_integer")
INPUTS = ("video_matrix", "num_frames")
OUTPUT = "predictions"


def top_k(scores, k):
    """(class indexes, scores) of the `k` best of each row, best first; equal
    scores by class index, as tf.math.top_k orders them."""
    indexes = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    return indexes, np.take_along_axis(scores, indexes, axis=1)


def _checked_quantization(quantize):
    if quantize not in QUANTIZATIONS:
        raise UserError(f"--quantize={quantize}: one of {', '.join(QUANTIZATIONS)}")
    return quantize


def representative_batches(config, data_pattern, batches, batch_size):
    """Up to `batches` batches of the model's inputs ([video_matrix, num_frames])
    read from `data_pattern`, as the converter's calibration set."""
    with tf.Graph().as_default():
        reader = config.reader()
        batch = readers.get_input_data_tensors(
            reader, data_pattern, batch_size=batch_size, num_epochs=1, shuffle=False
        )
        fetches = [batch[name] for name in INPUTS]
        with tf.compat.v1.Session() as session:
            session.run(tf.compat.v1.local_variables_initializer())
            held = []
            for values in readers.run_to_end(session, fetches, reader, data_pattern):
                held.append(values)
                if len(held) == batches:
                    break
    if not held:
        raise UserError(f"no videos to calibrate with in {data_pattern}")
    return held


def convert(config, train_dir, quantize="none", checkpoint_path="", representative=None):
    """(the .tflite bytes of the only model of `config`, the checkpoint they
    hold): the run in `train_dir`, its latest readable checkpoint or
    `checkpoint_path`; `representative` (batches of inputs) for full_integer."""
    _checked_quantization(quantize)
    if quantize == "full_integer" and not representative:
        raise UserError("--quantize=full_integer needs videos to calibrate with")
    with tf.Graph().as_default():
        batch = model_graph.placeholder_batch(config)
        _, scores = model_graph.predictions(config, batch)
        scores = tf.identity(scores, name=OUTPUT)
        with tf.compat.v1.Session() as session:
            checkpoint = checkpoints.restore_latest(
                session, train_dir, config.models, checkpoint_path
            )
            converter = tf.compat.v1.lite.TFLiteConverter.from_session(
                session, [batch[name] for name in INPUTS], [scores]
            )
            if quantize != "none":
                converter.optimizations = [tf.lite.Optimize.DEFAULT]
            if quantize == "full_integer":
                converter.representative_dataset = lambda: iter(representative)
            try:
                return converter.convert(), checkpoint
            except Exception as error:  # the converter raises ConverterError and others
                raise UserError(
                    f"LiteRT cannot convert the {config.models[0]} ({config.model}) of "
                    f"{checkpoint}: {_conversion_problem(error)}"
                ) from error


def _conversion_problem(error):
    """The converter's own words on what it cannot take (its message is long)."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    wanted = [line for line in lines if "error:" in line or line.startswith("tf.")]
    text = " ".join(wanted[:3] or lines[:1]) or type(error).__name__
    return text[:600]


def save(directory, content, config):
    """Writes the model file and its config into `directory` (a new one)."""
    tf.io.gfile.makedirs(directory)
    with tf.io.gfile.GFile(os.path.join(directory, run_files.LITERT_MODEL_FILE), "wb") as stream:
        stream.write(content)
    run_files.write_model_config(directory, config)


def read_config(directory):
    """The ModelConfig saved with a LiteRT export (what its reader must decode)."""
    path = os.path.join(directory, run_files.MODEL_FLAGS_FILE)
    model_file = os.path.join(directory, run_files.LITERT_MODEL_FILE)
    if not tf.io.gfile.exists(model_file) or not tf.io.gfile.exists(path):
        raise UserError(
            f"{directory} is not a LiteRT export (it needs {run_files.LITERT_MODEL_FILE} and "
            f"{run_files.MODEL_FLAGS_FILE}; export_model.py --format=litert writes them)"
        )
    return run_files.read_model_config(path)


def _interpreter_module():
    try:
        from ai_edge_litert import interpreter
    except ImportError as error:
        raise UserError(
            "running a .tflite model needs the LiteRT interpreter: "
            "pip install -r requirements-litert.txt"
        ) from error
    return interpreter


class LiteRTModel:
    """A .tflite model of this project run by the LiteRT interpreter: the XNNPACK
    delegate where it takes the model, the builtin kernels where it does not (it
    refuses some integer ops of the full-integer LSTM)."""

    def __init__(self, path, threads=0):
        self.path = path
        litert = _interpreter_module()
        # A local file is mapped by the interpreter; another filesystem's is read
        # into memory first (the model is then held twice).
        self._model = {"model_path": filesystem.local_path(path)}
        if not filesystem.is_local(path) or not os.path.isfile(filesystem.local_path(path)):
            try:
                with tf.io.gfile.GFile(path, "rb") as stream:
                    self._model = {"model_content": stream.read()}
            except tf.errors.OpError as error:
                raise UserError(f"cannot read {path}: {error.message}") from error
        self._threads = threads or os.cpu_count()
        self._resolvers = [
            ("xnnpack", litert.OpResolverType.AUTO),
            ("builtin", litert.OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES),
        ]
        self._batch = None
        self._load(litert, batch=1)

    def _load(self, litert, batch):
        problems = []
        for name, resolver in self._resolvers:
            try:
                interpreter = litert.Interpreter(
                    **self._model,
                    num_threads=self._threads,
                    experimental_op_resolver_type=resolver,
                )
                inputs = {d["name"]: d for d in interpreter.get_input_details()}
                if sorted(inputs) != sorted(INPUTS):
                    raise UserError(
                        f"{self.path} takes inputs {sorted(inputs)}, not this project's "
                        f"{list(INPUTS)}"
                    )
                shapes = {n: [batch, *inputs[n]["shape"][1:]] for n in INPUTS}
                for input_name, shape in shapes.items():
                    interpreter.resize_tensor_input(inputs[input_name]["index"], shape)
                interpreter.allocate_tensors()
                # The delegate takes the graph at the first run: try one here.
                for input_name, shape in shapes.items():
                    zeros = np.zeros(shape, inputs[input_name]["dtype"])
                    interpreter.set_tensor(inputs[input_name]["index"], zeros)
                interpreter.invoke()
            except UserError:
                raise  # not this project's model: no other kernels will do
            except (RuntimeError, ValueError) as error:
                problems.append(f"{name}: {error}")
                self._resolvers = [r for r in self._resolvers if r[0] != name]
                continue
            self.delegate = name
            self._interpreter, self._inputs, self._batch = interpreter, inputs, batch
            (self._output,) = interpreter.get_output_details()
            return
        raise UserError(f"the LiteRT interpreter cannot run {self.path}: {'; '.join(problems)}")

    def _resize(self, batch):
        """The same interpreter for another batch size (its kernels keep their
        prepared weights); a new one where the delegate cannot take the change."""
        try:
            for name in INPUTS:
                shape = [batch, *self._inputs[name]["shape"][1:]]
                self._interpreter.resize_tensor_input(self._inputs[name]["index"], shape)
            self._interpreter.allocate_tensors()
            self._batch = batch
        except (RuntimeError, ValueError):
            self._load(_interpreter_module(), batch)

    def predict(self, video_matrix, num_frames):
        """Scores [batch, classes] of a batch of the model's inputs."""
        video_matrix = np.asarray(video_matrix, np.float32)
        if len(video_matrix) != self._batch:
            self._resize(len(video_matrix))
        self._interpreter.set_tensor(self._inputs["video_matrix"]["index"], video_matrix)
        self._interpreter.set_tensor(
            self._inputs["num_frames"]["index"], np.asarray(num_frames, np.int32)
        )
        self._interpreter.invoke()
        return self._interpreter.get_tensor(self._output["index"]).copy()
