"""Run directories: the names and JSON files they hold, checkpoints, runs of the
original code, and the conversion of a teacher-student run into a student-only one."""
