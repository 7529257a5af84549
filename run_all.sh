#!/usr/bin/env bash
# The main job: sets up .venv, makes the sample in yt8m/ if missing, and runs the
# five stages on it at a CPU-sized setting (small LSTMs, small batches, a few
# hundred steps). Runs go to runs/sample/ (RUN_ROOT), started fresh each time.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/scripts/common.sh"
cd "$PROJECT_ROOT"

ensure_venv requirements.txt
ensure_sample

RUN_ROOT="${RUN_ROOT:-runs/sample}"
export TRAIN_DIR="$RUN_ROOT/model_HLSTM_TeaStud_every10_train"
export FINETUNE_DIR="$RUN_ROOT/model_HLSTM_TeaStud_every10_finetune"
export LOG_DIR="$RUN_ROOT"
export TRAIN_DATA="$YT8M_DIR/train*.tfrecord"
export EVAL_DATA="$YT8M_DIR/validate*.tfrecord"
TRAIN_STEPS="${TRAIN_STEPS:-400}"
FINETUNE_STEPS="${FINETUNE_STEPS:-200}"

# CPU-sized: the seed's architecture with 64-unit LSTMs, batches of 32.
SMALL_MODEL=(--lstm_cells=64 --lstm_layers=2)
SMALL_TRAINING=(--batch_size=32 --num_epochs=0 --base_learning_rate=0.003 --log_every_steps=50)
start=$(date +%s)

echo "== 1/5 train (teacher and student in parallel, $TRAIN_STEPS steps)"
./run_train.sh "${SMALL_MODEL[@]}" "${SMALL_TRAINING[@]}" --max_steps="$TRAIN_STEPS" \
  --start_new_model --overwrite
echo "== 2/5 validate (student, then teacher)"
./run_validate.sh
./run_validate.sh --eval_model=teacher --metrics_json="$TRAIN_DIR/validate_teacher_metrics.json"
echo "== 3/5 convert_model"
./run_convert_model.sh --overwrite
echo "== 4/5 finetune (student alone, $FINETUNE_STEPS more steps)"
./run_finetune.sh "${SMALL_TRAINING[@]}" --max_steps="$((TRAIN_STEPS + FINETUNE_STEPS))"
echo "== 5/5 evaluate (fine-tuned student)"
./run_evaluate.sh

"$PYTHON_BIN" - "$TRAIN_DIR" "$FINETUNE_DIR" "$(($(date +%s) - start))" <<'PY'
import json, os, sys
train_dir, finetune_dir, seconds = sys.argv[1], sys.argv[2], sys.argv[3]
rows = [
    ("teacher (all frames)", os.path.join(train_dir, "validate_teacher_metrics.json")),
    ("student (every 10th frame)", os.path.join(train_dir, "validate_metrics.json")),
    ("fine-tuned student", os.path.join(finetune_dir, "eval_metrics.json")),
]
print(f"\nValidation metrics on the sample (run_all.sh took {seconds} s):")
print(f"{'model':28s} {'step':>5s} {'GAP':>6s} {'mAP':>7s} {'mAP(present)':>12s} "
      f"{'Hit@1':>6s} {'PERR':>6s}")
for name, path in rows:
    m = json.load(open(path))
    print(f"{name:28s} {m['global_step']:5d} {m['gap']:6.3f} {m['map']:7.5f} "
          f"{m['map_present_classes']:12.3f} {m['hit_at_one']:6.3f} {m['perr']:6.3f}")
print("mAP: over all classes (the original's); mAP(present): over the classes in the split.")
print("A random scorer gets a GAP of about 0.000 on this split.")
PY
