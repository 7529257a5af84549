#!/usr/bin/env bash
# The test suite: sets up .venv, lints, runs pytest (the tests make their own small samples).
# Extra arguments go to pytest (e.g. ./run_tests.sh -k readers).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/scripts/common.sh"
cd "$PROJECT_ROOT"

ensure_venv requirements.txt requirements-dev.txt requirements-tensorboard.txt requirements-litert.txt requirements-video.txt requirements-beam.txt
echo "== ruff"
"$VENV_DIR/bin/ruff" check .
"$VENV_DIR/bin/ruff" format --check .
echo "== pytest"
# One worker per core, two at least and four at most (a worker's TensorFlow
# processes take up to a few GB).
cores=$(nproc)
default_workers=$(( cores < 2 ? 2 : (cores > 4 ? 4 : cores) ))
workers="${TEST_WORKERS:-$default_workers}"
# Each worker's TensorFlow processes take their share of the cores (one each on
# two cores), so that threads waiting for work do not spin against the other
# worker's; a run that sets these keeps its own.
threads=$(( cores / workers ))
export TF_NUM_INTRAOP_THREADS="${TF_NUM_INTRAOP_THREADS:-$(( threads > 0 ? threads : 1 ))}"
export TF_NUM_INTEROP_THREADS="${TF_NUM_INTEROP_THREADS:-1}"
# Every tool is installed above: a test that would skip for lack of one fails instead.
export YT8M_TESTS_REQUIRE_EVERY_TOOL=1
# worksteal: a worker that runs out of tests takes half of the other's queue.
"$PYTHON_BIN" -m pytest -n "$workers" --dist worksteal --durations=25 "$@"
