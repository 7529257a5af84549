"""What every binary needs around TensorFlow: threads, clear errors, atomic files."""

import json
import os
import sys
import tempfile

import tensorflow as tf
from absl import app, flags

flags.DEFINE_integer("intra_op_threads", 0, "Threads inside one op (0: TensorFlow's choice).")
flags.DEFINE_integer("inter_op_threads", 0, "Ops run in parallel (0: TensorFlow's choice).")

FLAGS = flags.FLAGS


class UserError(ValueError):
    """A problem with the command line, the files or the data: reported in one line,
    without a traceback. Any other exception is a bug and keeps its traceback."""


def session_config():
    return tf.compat.v1.ConfigProto(
        intra_op_parallelism_threads=FLAGS["intra_op_threads"].value,
        inter_op_parallelism_threads=FLAGS["inter_op_threads"].value,
        allow_soft_placement=True,
    )


def write_atomically(path, text):
    """Writes `text` to a temporary file beside `path` and renames it into place."""
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=folder, prefix=os.path.basename(path) + ".tmp")
    try:
        with os.fdopen(handle, "w") as stream:
            stream.write(text)
        os.replace(temporary, path)
    except BaseException:
        if os.path.exists(temporary):
            os.remove(temporary)
        raise


def write_json(path, value):
    write_atomically(path, json.dumps(value, indent=2, sort_keys=True) + "\n")


def run(main):
    """app.run(main) for a graph-mode binary; expected errors end with a message and exit 1."""

    def guarded(argv):
        tf.compat.v1.disable_eager_execution()
        try:
            if len(argv) > 1:
                raise UserError(f"unexpected arguments: {' '.join(argv[1:])}")
            main(argv)
        except (UserError, OSError) as error:
            print(f"ERROR: {error}", file=sys.stderr)
            sys.exit(1)

    app.run(guarded)
