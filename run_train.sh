#!/usr/bin/env bash
# Stage 1: train the teacher and the student in parallel (the seed's settings).
# Checkpoints in $TRAIN_DIR (default ./model_HLSTM_TeaStud_every10_train); a second
# run resumes from the last checkpoint. Extra arguments go to train.py.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/scripts/common.sh"
select_python
require_data "$TRAIN_DATA" "training data"

run_logged "$LOG_DIR/output_HLSTM_TeaStud_every10_after_Nepc" \
  "$PYTHON_BIN" "$CODE_DIR/train.py" \
  --train_dir="$TRAIN_DIR" \
  --train_data_pattern="$TRAIN_DATA" \
  --feature_names="rgb, audio" --feature_sizes="1024, 128" --frame_features=True \
  --model=HierarchicalLstmModel --video_level_classifier_model=MoeModel \
  --moe_num_mixtures=2 --lstm_cells=1024 --lstm_layers=2 --num_inputs_to_lstm=20 \
  --max_num_frames=300 --every_n=10 --batch_size=256 \
  --base_learning_rate=0.001 --learning_rate_decay=1 --learning_rate_decay_examples=4000000 \
  --optimizer=AdamOptimizer --clip_gradient_norm=1.0 --regularization_penalty=2 \
  --label_loss=CrossEntropyLoss --num_epochs=1 --num_readers=4 \
  "$@"
