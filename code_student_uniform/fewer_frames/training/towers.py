"""Several devices in one process: the batch split into towers with shared variables.

Each tower builds the models on its slice of the batch, on its own device; the
variables live once (on the CPU, or where a parameter-server device setter put
them). Each tower's losses are combined into the whole batch's (a batch mean
is the mean of the towers' means, equal slices; a batch sum is their sum), and
one gradient of that loss, each tower's part computed on its device, makes one
step equal to a step on one device with the whole batch.
"""

import tensorflow as tf

from fewer_frames.system.errors import UserError

# Ops that hold variables: they stay where the variables are kept.
_VARIABLE_OPS = frozenset({"Variable", "VariableV2", "VarHandleOp", "AutoReloadVariable"})


def tower_devices(num_gpu=1, num_cpu_towers=1, worker_device=""):
    """The towers' device names; [None] for one tower on TensorFlow's choice."""
    if num_gpu > 1 and num_cpu_towers > 1:
        raise UserError("give --num_gpu or --num_cpu_towers, not both")
    if num_gpu < 1 or num_cpu_towers < 1:
        raise UserError("--num_gpu and --num_cpu_towers count towers: at least 1")
    if num_gpu > 1:
        visible = len(tf.config.list_physical_devices("GPU"))
        if visible < num_gpu:
            raise UserError(
                f"--num_gpu={num_gpu}, but {visible} GPU(s) are visible; "
                "--num_cpu_towers=N runs N towers on the CPU"
            )
        return [f"{worker_device}/device:GPU:{index}" for index in range(num_gpu)]
    if num_cpu_towers > 1:
        return [f"{worker_device}/device:CPU:{index}" for index in range(num_cpu_towers)]
    return [None]


def placement(tower_device):
    """A device function: variables on the CPU (a parameter-server device setter
    outside moves them on to the parameter servers), every other op on the
    tower's device."""

    def place(op):
        return "/device:CPU:0" if op.type in _VARIABLE_OPS else tower_device

    return place


def split_batch(batch, count):
    """The batch's tensors cut into `count` equal slices along the batch axis
    (its size a multiple of `count`: see check_batch_size)."""
    if count == 1:
        return [batch]
    pieces = {name: tf.split(tensor, count, axis=0) for name, tensor in batch.items()}
    return [{name: pieces[name][index] for name in batch} for index in range(count)]


def check_batch_size(batch_size, count):
    if batch_size % count:
        raise UserError(
            f"--batch_size={batch_size} cannot be split into {count} equal towers; "
            "make it a multiple of the tower count"
        )


def combine(tower_values, sums=()):
    """One dict of the whole batch's values from the towers' dicts: the mean over
    the towers (values that are batch means), or the sum for keys in `sums`."""
    if len(tower_values) == 1:
        return dict(tower_values[0])
    combined = {}
    for key in tower_values[0]:
        values = [values[key] for values in tower_values]
        combined[key] = tf.add_n(values) if key in sums else tf.add_n(values) / len(values)
    return combined
