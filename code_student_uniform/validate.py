"""Evaluates the student (or --eval_model=teacher) of a training run on the validation set."""

from absl import flags

import evaluation
import runtime

FLAGS = flags.FLAGS
FLAGS.set_default("batch_size", 512)


def main(argv):
    evaluation.run_evaluation(FLAGS.train_dir)


if __name__ == "__main__":
    runtime.run(main)
