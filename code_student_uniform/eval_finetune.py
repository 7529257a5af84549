"""Evaluates a fine-tuned (student-only) run on the validation set."""

from absl import flags

import evaluation
import runtime

FLAGS = flags.FLAGS
FLAGS.set_default("batch_size", 512)
FLAGS.set_default("train_dir", "./model_HLSTM_TeaStud_every10_finetune/")


def main(argv):
    evaluation.run_evaluation(FLAGS.train_dir)


if __name__ == "__main__":
    runtime.run(main)
