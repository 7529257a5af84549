#!/usr/bin/env bash
# Stage 4: fine-tune the converted student in $FINETUNE_DIR on the labels alone.
# A second run resumes. Extra arguments go to train_finetune.py.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/scripts/common.sh"
select_python
require_checkpoint "$FINETUNE_DIR" "run run_convert_model.sh first (or set FINETUNE_DIR)"
require_data "$TRAIN_DATA" "training data"

run_logged "$LOG_DIR/output_HLSTM_TeaStud_every10_finetune_after_Nepc" \
  "$PYTHON_BIN" "$CODE_DIR/train_finetune.py" \
  --train_dir="$FINETUNE_DIR" \
  --train_data_pattern="$TRAIN_DATA" \
  --batch_size=256 --base_learning_rate=0.001 --learning_rate_decay=1 \
  --learning_rate_decay_examples=4000000 --optimizer=AdamOptimizer \
  --clip_gradient_norm=1.0 --regularization_penalty=2 --num_epochs=1 --num_readers=4 \
  "$@"
