"""Trains a teacher and a student on YouTube-8M (parallel by default; see
fewer_frames/training/training_loop.py)."""

from absl import flags

from fewer_frames.config import command_line
from fewer_frames.system import runtime
from fewer_frames.training import training_loop

command_line.define(*command_line.RUN_TOPICS, "training", "precision")
flags.DEFINE_enum(
    "training_mode",
    "parallel",
    ["parallel", "serial", "teacher_only", "student_only"],
    "parallel: teacher and student learn together; serial: the student learns from the frozen "
    "teacher of --teacher_dir; teacher_only / student_only: one model on the labels.",
)
flags.DEFINE_string("teacher_dir", "", "serial: run directory holding the trained teacher.")

FLAGS = flags.FLAGS


def main(argv):
    training_loop.run_training(
        FLAGS.training_mode,
        FLAGS.train_dir,
        FLAGS.teacher_dir,
        command_line.requested_model(),
        command_line.run_settings(),
    )


if __name__ == "__main__":
    runtime.run(main)
