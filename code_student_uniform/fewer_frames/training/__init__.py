"""Training: the graph of every mode, the loop, towers over several devices,
parameter servers, the trainer's lease and its progress."""
