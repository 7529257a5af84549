"""What every module stands on: one-line errors, how a binary runs (signals, machine
limits), and atomic files on any TensorFlow filesystem."""
