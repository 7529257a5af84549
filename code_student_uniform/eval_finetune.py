"""Evaluates a fine-tuned (student-only) run on the validation set."""

from absl import flags

from fewer_frames.config import command_line, settings
from fewer_frames.evaluation import evaluation_loop
from fewer_frames.system import runtime

command_line.define(
    *command_line.EVALUATION_TOPICS,
    batch_size=settings.EVALUATION_BATCH_SIZE,
    train_dir=settings.FINETUNE_DIR,
)
FLAGS = flags.FLAGS


def main(argv):
    evaluation_loop.run_evaluation(
        FLAGS.train_dir, command_line.requested_model(), command_line.evaluation_settings()
    )


if __name__ == "__main__":
    runtime.run(main)
