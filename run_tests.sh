#!/usr/bin/env bash
# The test suite: sets up .venv, lints, runs pytest (the tests make their own small samples).
# Extra arguments go to pytest (e.g. ./run_tests.sh -k readers).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/scripts/common.sh"
cd "$PROJECT_ROOT"

ensure_venv requirements.txt requirements-dev.txt requirements-tensorboard.txt requirements-litert.txt requirements-video.txt
echo "== ruff"
"$VENV_DIR/bin/ruff" check .
"$VENV_DIR/bin/ruff" format --check .
echo "== pytest"
# Every tool is installed above: a test that would skip for lack of one fails instead.
export YT8M_TESTS_REQUIRE_EVERY_TOOL=1
"$PYTHON_BIN" -m pytest -n "${TEST_WORKERS:-2}" --durations=25 "$@"
