#!/usr/bin/env python3
"""Interrupts one training run many times and checks that nothing is lost.

Starts train.py on a run directory again and again, and at a random moment of
each start sends SIGKILL, SIGTERM or SIGINT (in turn). After every stop it
checks that the global step never went back, that every checkpoint left in the
directory restores (all its tensors read, all finite), and at the end prints
the figures as JSON. Not part of CI.

  .venv/bin/python scripts/soak_interruptions.py --rounds=30 \\
      --data_pattern='yt8m/train*.tfrecord' --run_dir=/tmp/soak
"""

import argparse
import glob
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SIGNALS = (signal.SIGKILL, signal.SIGTERM, signal.SIGINT)


def _read(path):
    with open(path) as stream:
        return stream.read()


def checkpoint_steps_and_problems(run_dir):
    """{step: problem or None} for every checkpoint in `run_dir`."""
    import tensorflow as tf

    found = {}
    for index in glob.glob(os.path.join(run_dir, "model.ckpt-*.index")):
        prefix = index[: -len(".index")]
        step = int(prefix.rsplit("-", 1)[1])
        try:
            reader = tf.train.load_checkpoint(prefix)
            bad = [
                name
                for name in reader.get_variable_to_shape_map()
                if np.issubdtype(np.asarray(reader.get_tensor(name)).dtype, np.floating)
                and not np.all(np.isfinite(reader.get_tensor(name)))
            ]
            found[step] = f"not finite: {bad[:3]}" if bad else None
        except Exception as error:  # any failure to read is what the soak looks for
            found[step] = str(error).splitlines()[0]
    return found


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--data_pattern", default=os.path.join(ROOT, "yt8m", "train*.tfrecord"))
    parser.add_argument("--run_dir", default="/tmp/soak_interruptions")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--most_seconds", type=float, default=3.0)
    args = parser.parse_args()
    shutil.rmtree(args.run_dir, ignore_errors=True)
    rng = random.Random(args.seed)
    command = [
        sys.executable,
        os.path.join(ROOT, "code_student_uniform", "train.py"),
        f"--train_dir={args.run_dir}",
        f"--train_data_pattern={args.data_pattern}",
        "--lstm_cells=8",
        "--lstm_layers=1",
        "--batch_size=16",
        "--num_epochs=0",
        "--log_every_steps=1",
        "--checkpoint_every_steps=7",
    ]
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    rounds, last_step, failures = [], 0, []
    start = time.time()
    for number in range(args.rounds):
        signum = SIGNALS[number % len(SIGNALS)]
        log_path = os.path.join(os.path.dirname(args.run_dir.rstrip("/")), "soak_round.log")
        with open(log_path, "w") as log:
            process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=log)
        # At a random moment after training started (SIGKILL now and then before).
        deadline = time.time() + 120
        while "Training from" not in _read(log_path) and time.time() < deadline:
            if signum == signal.SIGKILL and rng.random() < 0.02:
                break
            time.sleep(0.05)
        time.sleep(rng.uniform(0.0, args.most_seconds))
        process.send_signal(signum)
        process.wait(timeout=300)
        stderr = _read(log_path)
        checkpoints = checkpoint_steps_and_problems(args.run_dir)
        newest = max(checkpoints, default=0)
        broken = {step: problem for step, problem in checkpoints.items() if problem}
        stopped = re.search(r"Stopped by \w+: at global step (\d+)", stderr)
        rounds.append(
            {
                "signal": signal.Signals(signum).name,
                "exit": process.returncode,
                "newest_checkpoint": newest,
                "stopped_at": int(stopped.group(1)) if stopped else None,
            }
        )
        if newest < last_step:
            failures.append(f"round {number}: the step went back from {last_step} to {newest}")
        if broken:
            failures.append(f"round {number}: checkpoints that do not restore: {broken}")
        if signum != signal.SIGKILL and (
            process.returncode != 128 + signum or not stopped or int(stopped.group(1)) != newest
        ):
            failures.append(f"round {number}: not stopped at a saved step: {rounds[-1]}")
        last_step = max(last_step, newest)
    figures = {
        "rounds": args.rounds,
        "seconds": round(time.time() - start, 1),
        "final_step": last_step,
        "saved_at_the_signal": sum(
            1
            for r in rounds
            if r["stopped_at"] is not None and r["stopped_at"] == r["newest_checkpoint"]
        ),
        "by_signal": {
            name: sum(1 for r in rounds if r["signal"] == name)
            for name in ("SIGKILL", "SIGTERM", "SIGINT")
        },
        "failures": failures,
        "rounds_detail": rounds,
    }
    print(json.dumps(figures, indent=2))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
