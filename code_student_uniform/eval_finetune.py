"""Evaluates a fine-tuned (student-only) run on the validation set."""

from absl import flags

import runtime
import validate

FLAGS = flags.FLAGS
FLAGS.set_default("train_dir", "./model_HLSTM_TeaStud_every10_finetune/")


if __name__ == "__main__":
    runtime.run(validate.main)
