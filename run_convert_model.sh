#!/usr/bin/env bash
# Stage 3: cut the student out of the teacher-student checkpoint in $TRAIN_DIR
# into a student-only checkpoint in $FINETUNE_DIR. Extra arguments (e.g.
# --overwrite) go to train_convert_model.py.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/scripts/common.sh"
select_python
require_checkpoint "$TRAIN_DIR" "run run_train.sh first (or set TRAIN_DIR)"

run_logged "$LOG_DIR/convert_HLSTM_TeaStud_every10" \
  "$PYTHON_BIN" "$CODE_DIR/train_convert_model.py" \
  --train_dir="$TRAIN_DIR" \
  --finetune_dir="$FINETUNE_DIR" \
  "$@"
