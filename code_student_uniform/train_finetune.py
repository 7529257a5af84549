"""Fine-tunes a converted student on the labels alone (L_CE)."""

from absl import flags

import command_line
import runtime
import settings
import training

command_line.define(*command_line.RUN_TOPICS, "training", train_dir=settings.FINETUNE_DIR)
FLAGS = flags.FLAGS


def main(argv):
    training.run_training(
        "finetune",
        FLAGS.train_dir,
        requested=command_line.requested_model(),
        settings=command_line.run_settings(),
    )


if __name__ == "__main__":
    runtime.run(main)
