#!/usr/bin/env bash
# Reproduces the bundled demo weights: models/rmt_ppad_s_demo (procedural scenes, rmt_ppad_s trained from
# scratch with config/train_synthetic_s.yaml, scored on 200 held-out scenes of a new seed; about 95 minutes
# on a 2-core CPU, resumable) and its compressed student models/rmt_ppad_s_demo_student (`ppad compress`).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
PPAD="${PPAD_VENV:-.venv}/bin/ppad"
RUN=runs/train_synthetic_s

if [ ! -f data/synthetic/.complete ]; then
  "$PPAD" synth data/synthetic --train 1800 --val 200 --seed 0
  touch data/synthetic/.complete
fi
if [ -f "$RUN/last_state.pt" ]; then
  "$PPAD" train --resume "$RUN" --no-progress
else
  "$PPAD" train config/train_synthetic_s.yaml --run-dir "$RUN" --no-progress
fi
if [ ! -f data/synthetic_heldout/.complete ]; then
  "$PPAD" synth data/synthetic_heldout --train 0 --val 200 --seed 7
  touch data/synthetic_heldout/.complete
fi
"$PPAD" eval "$RUN/best" --data data/synthetic_heldout --json "$RUN/heldout_eval.json"
rm -rf models/rmt_ppad_s_demo
mkdir -p models
cp -r "$RUN/best" models/rmt_ppad_s_demo
echo "[make_models] wrote models/rmt_ppad_s_demo"

# The demo student: `ppad compress` of the demo teacher (task-aware pruning to 32.7 % fewer parameters,
# then 6 epochs of fine-tuning with feature distillation; about 55 minutes on the 2-core CPU), then
# 6 more distillation epochs from that student at half the learning rate (about 55 minutes).
"$PPAD" compress models/rmt_ppad_s_demo --out runs/compress_s --data data/synthetic --val-split val2017 --no-progress
"$PPAD" distill runs/compress_s/student --teacher models/rmt_ppad_s_demo --config config/distill_synthetic_s.yaml \
  --run-dir runs/distill_cont --set optimizer.lr=0.0001 --no-compare --no-progress
"$PPAD" eval runs/distill_cont/best --data data/synthetic_heldout --json runs/distill_cont/heldout_eval.json
rm -rf models/rmt_ppad_s_demo_student
cp -r runs/distill_cont/best models/rmt_ppad_s_demo_student
echo "[make_models] wrote models/rmt_ppad_s_demo_student"
