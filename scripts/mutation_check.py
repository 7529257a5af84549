#!/usr/bin/env python3
"""Checks that the test suite catches deliberate bugs.

Each mutation in scripts/mutations.json names a file, a piece of its text, the
text to put in its place, and the tests that must fail with it. For each, this
script copies the repository (the files git tracks or does not ignore) to a
scratch folder beside a link to ../shared, applies that one change, runs those
tests there, and reports whether they failed ("caught") or passed ("survived").
The tests are first run on the unchanged copy, which must pass.

Usage (from the repository root, after ./run_tests.sh has set up .venv):
  .venv/bin/python scripts/mutation_check.py            # every mutation
  .venv/bin/python scripts/mutation_check.py --only readers --jobs 2
Exits 0 when every mutation was caught, 1 when any survived, 2 on a bad list.
Takes long (every listed test runs once per mutation); not part of CI.
"""

import argparse
import concurrent.futures
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MUTATIONS_FILE = os.path.join(ROOT, "scripts", "mutations.json")


def repository_files():
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
        cwd=ROOT,
        capture_output=True,
        check=True,
    ).stdout.decode()
    return [
        path for path in listed.split("\0") if path and os.path.isfile(os.path.join(ROOT, path))
    ]


def make_copy(scratch, name):
    """A copy of the repository at scratch/<name>/main, with scratch/<name>/shared
    linked to the real ../shared (the tests find the real shards there)."""
    base = os.path.join(scratch, name)
    target = os.path.join(base, "main")
    for path in repository_files():
        destination = os.path.join(target, path)
        os.makedirs(os.path.dirname(destination), exist_ok=True)
        shutil.copy2(os.path.join(ROOT, path), destination)
    shared = os.path.join(os.path.dirname(ROOT), "shared")
    if os.path.isdir(shared):
        os.symlink(shared, os.path.join(base, "shared"))
    return target


def apply(copy, mutation, check_only=False):
    path = os.path.join(copy, mutation["file"])
    with open(path) as handle:
        text = handle.read()
    count = text.count(mutation["find"])
    if count != 1:
        raise ValueError(
            f"mutation {mutation['name']!r}: its text occurs {count} times in "
            f"{mutation['file']} (must be once); update scripts/mutations.json"
        )
    if not check_only:
        with open(path, "w") as handle:
            handle.write(text.replace(mutation["find"], mutation["replace"]))


def run_tests(copy, tests, timeout):
    """(passed, seconds, output tail) of pytest on `tests` in `copy`."""
    start = time.time()
    command = [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", *tests]
    # The stage scripts run with the repository's own .venv (the copy has none).
    env = dict(
        os.environ,
        TF_CPP_MIN_LOG_LEVEL="2",
        YT8M_TESTS_REQUIRE_EVERY_TOOL="1",
        VENV_DIR=os.path.join(ROOT, ".venv"),
    )
    try:
        result = subprocess.run(
            command, cwd=copy, capture_output=True, text=True, timeout=timeout, env=env
        )
    except subprocess.TimeoutExpired:
        return False, time.time() - start, "timed out"
    return result.returncode == 0, time.time() - start, (result.stdout + result.stderr)[-2000:]


def check(mutation, scratch, index, timeout):
    copy = make_copy(scratch, f"mutant{index}")
    try:
        apply(copy, mutation)
        passed, seconds, tail = run_tests(copy, mutation["tests"], timeout)
    finally:
        shutil.rmtree(os.path.dirname(copy), ignore_errors=True)
    return {"name": mutation["name"], "caught": not passed, "seconds": round(seconds, 1)}, tail


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--only", default="", help="Only mutations whose name or file has one of these (a,b,...)."
    )
    parser.add_argument("--jobs", type=int, default=1, help="Mutations checked at once.")
    parser.add_argument("--timeout", type=int, default=900, help="Seconds per test run.")
    parser.add_argument("--output_json", default="", help="Also write the results here.")
    args = parser.parse_args()
    with open(MUTATIONS_FILE) as handle:
        mutations = json.load(handle)
    parts = args.only.split(",")
    chosen = [m for m in mutations if any(p in m["name"] or p in m["file"] for p in parts)]
    if not chosen:
        print(f"no mutation matches {args.only!r}", file=sys.stderr)
        return 2
    scratch = tempfile.mkdtemp(prefix="mutation_check.")
    try:
        baseline = make_copy(scratch, "baseline")
        for mutation in chosen:  # every listed text is found once before anything runs
            apply(baseline, mutation, check_only=True)
        tests = sorted({test for mutation in chosen for test in mutation["tests"]})
        print(f"baseline: {len(tests)} test selections on the unchanged code", flush=True)
        passed, seconds, tail = run_tests(baseline, tests, args.timeout * 2)
        if not passed:
            print(f"the unchanged code fails its tests ({seconds:.0f} s):\n{tail}", file=sys.stderr)
            return 2
        print(f"baseline passed in {seconds:.0f} s", flush=True)
        results = []
        with concurrent.futures.ThreadPoolExecutor(max_workers=args.jobs) as pool:
            futures = [
                pool.submit(check, mutation, scratch, index, args.timeout)
                for index, mutation in enumerate(chosen)
            ]
            for future in futures:
                result, tail = future.result()
                results.append(result)
                verdict = "caught" if result["caught"] else "SURVIVED"
                print(f"{verdict:8} {result['seconds']:6.1f} s  {result['name']}", flush=True)
    except ValueError as error:
        print(f"ERROR: {error}", file=sys.stderr)
        return 2
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    survived = [result["name"] for result in results if not result["caught"]]
    print(f"{len(results) - len(survived)} of {len(results)} mutations caught")
    for name in survived:
        print(f"survived: {name}")
    if args.output_json:
        with open(args.output_json, "w") as handle:
            json.dump(results, handle, indent=2)
    return 1 if survived else 0


if __name__ == "__main__":
    sys.exit(main())
