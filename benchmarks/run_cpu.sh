#!/usr/bin/env bash
# Reproduces benchmarks/RESULTS.md on this machine: the paper-sized teacher (rmt_ppad_l, random weights:
# latency does not depend on their values) and its pruned student (`ppad prune --scope
# backbone+encoder+head`, 32.7 % of the parameters removed, Taylor statistics on a few synthetic
# scenes), then the demo teacher and student,
# through every backend variant. Needs `bash scripts/setup.sh` and data/synthetic (scripts/make_models.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${PPAD_VENV:-.venv}"
OUT=runs/bench
mkdir -p "$OUT"
if [ ! -f "$OUT/paper_teacher/model.safetensors" ]; then
  "$VENV/bin/python" -c "import torch, ppad_core; torch.manual_seed(0); \
ppad_core.save_checkpoint(ppad_core.build_model(ppad_core.load_model_config('config/rmt_ppad_l.yaml')), \
'$OUT/paper_teacher', {'kind': 'initialised', 'seed': 0})"
fi
if [ ! -f "$OUT/paper_student/model.safetensors" ]; then
  "$VENV/bin/ppad" prune "$OUT/paper_teacher" --out "$OUT/paper_student" --data data/synthetic \
    --scope backbone+encoder+head --steps 1 --calib-batches 2 --calib-batch-size 1 --no-compare --no-progress --json | tee "$OUT/paper_prune.json"
fi
"$VENV/bin/ppad" bench "$OUT/paper_teacher" "$OUT/paper_student" --labels paper-teacher paper-student \
  --int8 --runs 5 --warmup 1 --batch-sizes 1 --variants eager channels-last onnxruntime \
  --json-out "$OUT/paper.json" --markdown "$OUT/paper.md"
"$VENV/bin/ppad" bench models/rmt_ppad_s_demo models/rmt_ppad_s_demo_student --labels demo-teacher demo-student \
  --int8 --runs 20 --warmup 3 --json-out "$OUT/demo.json" --markdown "$OUT/demo.md"
