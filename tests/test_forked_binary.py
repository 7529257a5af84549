"""The fork server's launcher behaves as a new interpreter would: the same output,
exit status, signal dispositions and exit handlers, signals passed on, and its
child killed when it dies. A new interpreter is the oracle."""

import json
import os
import select
import signal
import socket
import subprocess
import sys

import pytest

from testlib import binary_launcher

PROGRAM = """
import atexit, os, signal, sys
print(sys.argv[1:], os.getcwd(), os.environ.get("MARK"), sys.stdin.read().strip())
print(sys.argv[0], sys.path)
print(signal.getsignal(signal.SIGINT) is signal.default_int_handler)
print([signal.getsignal(s) for s in (signal.SIGPIPE, signal.SIGTERM, signal.SIGCHLD)])
print("tensorflow imported:", "tensorflow" in sys.modules, file=sys.stderr)
atexit.register(print, "exit handler ran")
sys.exit(int(sys.argv[1]))
"""

WAITS_FOR_A_SIGNAL = """
import signal, sys, time
if sys.argv[1] == "handled":
    signal.signal(signal.SIGTERM, lambda number, frame: sys.exit(3))
print("ready", flush=True)
time.sleep(60)
"""


def _both(args, tmp_path, **options):
    """(new interpreter's, launcher's) CompletedProcess of `python <args>`."""
    return [
        subprocess.run(
            [python, *args],
            capture_output=True,
            text=True,
            cwd=tmp_path,
            timeout=120,
            **options,
        )
        for python in (sys.executable, binary_launcher())
    ]


@pytest.mark.parametrize("form", ["script", "-c", "-m"])
def test_the_launcher_runs_a_program_as_a_new_interpreter_does(form, tmp_path):
    """The same output (arguments, working folder, environment, import path),
    status, dispositions and exit handlers; `-m` finds its module on a
    PYTHONPATH of the run's own, which goes where the interpreter puts it."""
    script = tmp_path / "program.py"
    script.write_text(PROGRAM)
    (tmp_path / "modules").mkdir()
    (tmp_path / "modules" / "program_module.py").write_text(PROGRAM)
    program = {
        "script": [str(script)],
        "-c": ["-c", PROGRAM],
        "-m": ["-m", "program_module"],
    }[form]
    path = {"PYTHONPATH": f"{tmp_path}/modules"} if form == "-m" else {}
    for code in ("0", "5"):
        fresh, forked = _both(
            [*program, code, "two words"],
            tmp_path,
            input="from stdin\n",
            env=dict(os.environ, MARK="set", **path),
        )
        assert forked.returncode == fresh.returncode == int(code)
        assert forked.stdout == fresh.stdout
        assert "exit handler ran" in forked.stdout and "from stdin" in forked.stdout
        # The one difference: the forked child has TensorFlow imported already.
        assert "tensorflow imported: True" in forked.stderr


def test_the_launcher_passes_signals_on_and_exits_as_its_child(tmp_path):
    script = tmp_path / "waits.py"
    script.write_text(WAITS_FOR_A_SIGNAL)
    for how, expected in (("default", -signal.SIGTERM), ("handled", 3)):
        for python in (sys.executable, binary_launcher()):
            process = subprocess.Popen(
                [python, str(script), how], stdout=subprocess.PIPE, text=True, cwd=tmp_path
            )
            assert process.stdout.readline() == "ready\n"
            process.send_signal(signal.SIGTERM)
            assert process.wait(timeout=60) == expected, (python, how)


def test_a_killed_launcher_takes_its_child_with_it(tmp_path):
    script = tmp_path / "waits.py"
    script.write_text(WAITS_FOR_A_SIGNAL.replace('print("ready"', 'print(os.getpid(), "ready"'))
    script.write_text("import os\n" + script.read_text())
    process = subprocess.Popen(
        [binary_launcher(), str(script), "default"], stdout=subprocess.PIPE, text=True
    )
    child = int(process.stdout.readline().split()[0])
    assert child != process.pid
    ended = os.pidfd_open(child)  # readable once the child has ended
    try:
        assert not select.select([ended], [], [], 0)[0]
        process.kill()
        process.wait()
        assert select.select([ended], [], [], 30)[0], "the child outlived its launcher"
    finally:
        os.close(ended)


def test_a_launcher_killed_before_its_answer_leaves_the_server_serving(tmp_path):
    """A launcher gone before its request is read, or before it reads its
    child's pid (a kill -9 at any moment): the server serves the next one. (The
    child of a launcher that dies: test_a_killed_launcher_takes_its_child_with_it.)"""
    launcher = binary_launcher()
    socket_path = os.path.join(os.path.dirname(os.path.dirname(launcher)), "socket")
    silent = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    silent.connect(socket_path)
    silent.close()  # no request at all
    script = tmp_path / "waits.py"
    script.write_text("import time\ntime.sleep(60)\n")
    request = {"argv": [str(script)], "env": dict(os.environ), "cwd": str(tmp_path)}
    orphan = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    orphan.connect(socket_path)
    with open(os.devnull) as null:
        socket.send_fds(orphan, [json.dumps(request).encode()], [null.fileno()] * 3)
    orphan.close()  # gone before the pid comes back
    result = subprocess.run(
        [launcher, "-c", "print('served')"], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0 and result.stdout == "served\n", result.stderr
