#!/usr/bin/env bash
# Stage 2: evaluate the student of $TRAIN_DIR on the validation data (also L_REP
# against the teacher). Once by default; pass --run_once=false to follow new
# checkpoints. Metrics JSON: $TRAIN_DIR/validate_metrics.json. Extra arguments go to
# validate.py.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/scripts/common.sh"
select_python
require_checkpoint "$TRAIN_DIR" "run run_train.sh first (or set TRAIN_DIR)"
require_data "$EVAL_DATA" "validation data"

run_logged "$LOG_DIR/validate_HLSTM_TeaStud_every10_train_after_Nepc" \
  "$PYTHON_BIN" "$CODE_DIR/validate.py" \
  --train_dir="$TRAIN_DIR" \
  --eval_data_pattern="$EVAL_DATA" \
  --batch_size=512 --top_k=20 --run_once \
  --metrics_json="$TRAIN_DIR/validate_metrics.json" \
  "$@"
