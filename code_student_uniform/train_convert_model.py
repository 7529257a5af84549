"""Cuts the student out of a teacher-student checkpoint into a student-only one."""

from absl import flags, logging

from fewer_frames.config import command_line
from fewer_frames.run_dirs import run_directory, student_conversion
from fewer_frames.system import runtime

command_line.define(*command_line.RUN_TOPICS)
flags.DEFINE_string(
    "finetune_dir", "", "Where to write it (default: --train_dir with 'train' -> 'finetune')."
)

FLAGS = flags.FLAGS


def main(argv):
    target = FLAGS.finetune_dir or run_directory.default_finetune_dir(FLAGS.train_dir)
    config = run_directory.saved_config(command_line.requested_model(), FLAGS.train_dir)
    path = student_conversion.convert_to_student(config, FLAGS.train_dir, target, FLAGS.overwrite)
    logging.info("Student-only checkpoint: %s", path)


if __name__ == "__main__":
    runtime.run(main)
