"""Runs the binaries in processes forked from a server that has already imported
TensorFlow, so that a test's run, a stage script's and a Table 1 cell's skip the
interpreter's start and the imports of TensorFlow, numpy and absl (about four
seconds of every run).

`python forked_binary.py SOCKET LAUNCHER` is the server: it imports those
modules, writes LAUNCHER, an executable that stands in for the interpreter, and
forks one child per request on the Unix socket SOCKET. The launcher
(`LAUNCHER script.py args...`, `LAUNCHER -c code args...` or `LAUNCHER -m
module args...`) sends its arguments, environment, working folder and standard
streams, forwards the signals it gets to the child, and exits as the child did.
A PYTHONPATH of its own goes into the child's import path where the interpreter
puts it (so Beam's worker processes, `-m` with the project's code on
PYTHONPATH, are forked too). Anything else (other options), or an environment
whose other variables read at TensorFlow's import differ from the server's,
runs the real interpreter instead.

Each child is a process of its own, as `python code_student_uniform/<binary>.py`
would be: its own flags, TensorFlow state, exit status and streams, and a
process group of its own, which the server kills if the launcher dies. In the
child, sys.executable is the launcher, so that what a binary starts with it
(the Table 1 runner's train.py and validate.py) is forked too. The server imports
nothing else of the project, so that a binary finds TensorFlow as a fresh
interpreter would (eager by default).
"""

import contextlib
import json
import os
import select
import signal
import socket
import sys

PRELOADED = ["tensorflow", "numpy", "absl.app", "absl.flags", "absl.logging"]
# Environment variables read when TensorFlow is imported (TF_CONFIG is read at
# run time): a run that changes one needs a fresh interpreter.
IMPORT_TIME_PREFIXES = ("TF_", "CUDA", "PYTHON", "LD_")
REFUSED = -1000  # the server's answer to a run it cannot fork
MAX_MESSAGE = 1 << 20

# The launcher: only the standard library, started without site packages.
_LAUNCHER = """#!{python} -S
import json, os, signal, socket, sys
REAL = {python!r}
first = sys.argv[1] if len(sys.argv) > 1 else "-"
if not (first in ("-c", "-m") and len(sys.argv) > 2 or first.endswith(".py") and first[0] != "-"):
    os.execv(REAL, [REAL, *sys.argv[1:]])
connection = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
connection.connect({socket_path!r})
request = {{"argv": sys.argv[1:], "env": dict(os.environ), "cwd": os.getcwd()}}
socket.send_fds(connection, [json.dumps(request).encode()], [0, 1, 2])
child = int(connection.recv(64))
if child == {refused}:
    connection.close()
    os.execv(REAL, [REAL, *sys.argv[1:]])
for number in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGUSR1, signal.SIGUSR2):
    signal.signal(number, lambda number, frame: os.kill(child, number))
answer = connection.recv(64)
code = int(answer) if answer else 1
if code < 0:
    signal.signal(-code, signal.SIG_DFL)
    os.kill(os.getpid(), -code)
sys.exit(code)
"""


def write_launcher(path, socket_path):
    with open(path, "w") as handle:
        handle.write(
            _LAUNCHER.format(python=sys.executable, socket_path=socket_path, refused=REFUSED)
        )
    os.chmod(path, 0o755)


def _import_time_variables(env):
    return {
        name: value
        for name, value in env.items()
        if name.startswith(IMPORT_TIME_PREFIXES) and name not in ("TF_CONFIG", "PYTHONPATH")
    }


def _python_path(env):
    """The import path entries of PYTHONPATH in `env`, as the interpreter makes them."""
    return [
        os.path.abspath(entry) for entry in env.get("PYTHONPATH", "").split(os.pathsep) if entry
    ]


# The server's import path after its own first entry and PYTHONPATH: what every
# interpreter of this Python has (the standard library, site packages).
_SHARED_PATH = sys.path[1 + len(_python_path(os.environ)) :]


def _run_child(request, streams, launcher):
    """In the forked child: becomes `python <script> <args>` (or `python -c <code>
    <args>`) and never returns."""
    os.setpgid(0, 0)
    # The interpreter's own dispositions (SIGINT raising KeyboardInterrupt, SIGPIPE
    # ignored, ...) are the server's but for what it set itself.
    signal.set_wakeup_fd(-1)
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    for target, stream in enumerate(streams):
        os.dup2(stream, target)
        os.close(stream)
    import atexit
    import runpy
    import traceback

    os.chdir(request["cwd"])
    os.environ.clear()
    os.environ.update(request["env"])
    sys.executable = launcher
    # The import path of `python <script>`, `python -c` or `python -m`: the
    # script's folder, "" or the working folder, then PYTHONPATH's entries.
    if request["argv"][0] == "-c":
        _, source, *args = request["argv"]
        first, sys.argv = "", ["-c", *args]

        def main():
            module = sys.modules["__main__"] = type(sys)("__main__")
            exec(compile(source, "<string>", "exec"), module.__dict__)
    elif request["argv"][0] == "-m":
        _, module_name, *args = request["argv"]
        first, sys.argv = os.getcwd(), ["-m", *args]

        def main():
            runpy.run_module(module_name, run_name="__main__", alter_sys=True)
    else:
        script, *args = request["argv"]
        script = os.path.abspath(script)
        first, sys.argv = os.path.dirname(script), [script, *args]

        def main():
            runpy.run_path(script, run_name="__main__")

    sys.path[:] = [first, *_python_path(request["env"]), *_SHARED_PATH]

    code = 0
    try:
        main()
    except SystemExit as exit:
        code = exit.code if isinstance(exit.code, int) else int(exit.code is not None)
        if exit.code is not None and not isinstance(exit.code, int):
            print(exit.code, file=sys.stderr)
    except BaseException:
        traceback.print_exc()
        code = 1
    try:
        atexit._run_exitfuncs()  # as the interpreter does at exit; os._exit does not
        sys.stdout.flush()
        sys.stderr.flush()
    finally:
        os._exit(code)


def serve(socket_path, launcher):
    for name in PRELOADED:
        __import__(name)
    parent = os.getppid()
    server_variables = _import_time_variables(os.environ)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    listener.bind(socket_path)
    listener.listen(64)
    write_launcher(launcher, socket_path)
    # A child's exit wakes the loop through this pipe.
    woken, wake = os.pipe()
    os.set_blocking(wake, False)
    signal.set_wakeup_fd(wake)
    signal.signal(signal.SIGCHLD, lambda number, frame: None)
    print("ready", flush=True)
    children = {}  # pid: the launcher's connection
    while os.getppid() == parent:  # ends with the test process that started it
        waiting = [listener, woken, *children.values()]
        for ready in select.select(waiting, [], [], 1.0)[0]:
            if ready is listener:
                _start(listener, children, server_variables, launcher)
            elif ready == woken:
                os.read(woken, 4096)
            else:  # a launcher sends nothing after its request: it has gone
                pid = next(pid for pid, connection in children.items() if connection is ready)
                _kill_group(pid)
        while children:
            pid, status = os.waitpid(-1, os.WNOHANG)
            if not pid:
                break
            connection = children.pop(pid)
            with contextlib.suppress(OSError):
                connection.send(str(os.waitstatus_to_exitcode(status)).encode())
            connection.close()


def _start(listener, children, server_variables, launcher):
    connection, _ = listener.accept()
    # A launcher can be killed at any moment (the tests' kill -9): before its
    # request is read, or before it gets its child's pid. Neither ends the server.
    try:
        message, streams, _, _ = socket.recv_fds(connection, MAX_MESSAGE, 3)
    except OSError:
        message, streams = b"", []
    if not message:
        connection.close()
        for stream in streams:
            os.close(stream)
        return
    request = json.loads(message)
    if _import_time_variables(request["env"]) != server_variables or len(streams) != 3:
        with contextlib.suppress(OSError):
            connection.send(str(REFUSED).encode())
        connection.close()
        for stream in streams:
            os.close(stream)
        return
    pid = os.fork()
    if pid == 0:
        listener.close()
        _run_child(request, streams, launcher)
    with contextlib.suppress(OSError):  # also here: no kill can come before the child's own
        os.setpgid(pid, pid)
    for stream in streams:
        os.close(stream)
    children[pid] = connection
    # A launcher gone already: the loop sees its connection closed and kills the child.
    with contextlib.suppress(OSError):
        connection.send(str(pid).encode())


def _kill_group(pid):
    with contextlib.suppress(OSError):
        os.killpg(pid, signal.SIGKILL)


if __name__ == "__main__":
    serve(sys.argv[1], sys.argv[2])
