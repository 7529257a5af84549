"""Evaluates the student (or --eval_model=teacher) of a training run on the validation set."""

from absl import flags

import command_line
import evaluation_loop
import runtime

command_line.define(*command_line.RUN_TOPICS, "checkpoint", "evaluation")
FLAGS = flags.FLAGS
FLAGS.set_default("batch_size", 512)


def main(argv):
    evaluation_loop.run_evaluation(
        FLAGS.train_dir, command_line.requested_model(), command_line.evaluation_settings()
    )


if __name__ == "__main__":
    runtime.run(main)
