#!/usr/bin/env bash
# The paper's Table 1: every (row, k, seed) cell trained with train.py and scored
# with validate.py (code_student_uniform/experiments.py). Sets up .venv, makes the
# sample in yt8m/ if missing; extra arguments go to experiments.py. On the sample,
# on a CPU:  ./run_table1.sh --preset=cpu_sample --seeds=3 --jobs=2
# A second run with the same --output_dir continues an interrupted grid.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/scripts/common.sh"
cd "$PROJECT_ROOT"

ensure_venv requirements.txt
ensure_sample

exec "$PYTHON_BIN" "$CODE_DIR/experiments.py" \
  --train_data_pattern="$TRAIN_DATA" \
  --eval_data_pattern="$EVAL_DATA" \
  "$@"
