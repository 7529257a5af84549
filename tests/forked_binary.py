"""Runs a binary as __main__ in a process forked from a server that has already
imported TensorFlow (multiprocessing's forkserver, preloaded by testlib).

Each run is its own process, as `python code_student_uniform/<binary>.py` would
be: its own flags, TensorFlow state, exit status, stdout and stderr; only the
interpreter's start and the imports of TensorFlow, numpy and absl (about two
seconds of every run) happen once. This module imports nothing else, so that
the binary finds TensorFlow as a fresh interpreter would (eager by default).
"""

import os
import runpy
import sys
import traceback

PRELOADED = ["tensorflow", "numpy", "absl.app", "absl.flags", "absl.logging"]


def run(script, args, cwd, env, stdout_path, stderr_path, project_root):
    os.chdir(cwd)
    os.environ.clear()
    os.environ.update(env)
    for fd, path in ((1, stdout_path), (2, stderr_path)):
        os.dup2(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC), fd)
    # The import path of `python <script>`: the script's folder first, none of the
    # test runner's additions (its virtual environment's packages stay).
    sys.path[:] = [os.path.dirname(script)] + [
        path
        for path in sys.path
        if path and (not path.startswith(project_root) or path.startswith(sys.prefix))
    ]
    sys.argv = [script, *args]
    code = 0
    try:
        runpy.run_path(script, run_name="__main__")
    except SystemExit as exit:
        code = exit.code if isinstance(exit.code, int) else int(exit.code is not None)
        if exit.code is not None and not isinstance(exit.code, int):
            print(exit.code, file=sys.stderr)
    except BaseException:
        traceback.print_exc()
        code = 1
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
