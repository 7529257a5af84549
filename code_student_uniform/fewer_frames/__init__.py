"""The library of the binaries in code_student_uniform/, one package per topic:
system, config, inputs, features, models, run_dirs, evaluation, training, serving and
benchmarks, each importing only from the ones before it (docs/code_map.md)."""
