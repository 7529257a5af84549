"""Fine-tunes a converted student on the labels alone (L_CE)."""

from absl import flags

from fewer_frames.config import command_line, settings
from fewer_frames.system import runtime
from fewer_frames.training import training_loop

command_line.define(
    *command_line.RUN_TOPICS, "training", "precision", train_dir=settings.FINETUNE_DIR
)
FLAGS = flags.FLAGS


def main(argv):
    training_loop.run_training(
        "finetune",
        FLAGS.train_dir,
        requested=command_line.requested_model(),
        settings=command_line.run_settings(),
    )


if __name__ == "__main__":
    runtime.run(main)
