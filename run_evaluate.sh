#!/usr/bin/env bash
# Stage 5: evaluate the fine-tuned student in $FINETUNE_DIR on the validation data.
# Metrics JSON: $FINETUNE_DIR/eval_metrics.json. Extra arguments go to eval_finetune.py.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/scripts/common.sh"
select_python
require_checkpoint "$FINETUNE_DIR" "run run_convert_model.sh and run_finetune.sh first"
require_data "$EVAL_DATA" "validation data"

run_logged "$LOG_DIR/eval_HLSTM_TeaStud_every10_finetune_after_Nepc" \
  "$PYTHON_BIN" "$CODE_DIR/eval_finetune.py" \
  --train_dir="$FINETUNE_DIR" \
  --eval_data_pattern="$EVAL_DATA" \
  --batch_size=512 --top_k=20 --run_once \
  --metrics_json="$FINETUNE_DIR/eval_metrics.json" \
  "$@"
