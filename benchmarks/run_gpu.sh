#!/usr/bin/env bash
# GPU rows of benchmarks/RESULTS.md: teacher and student at batch 1, 640x640, fp32 and fp16 (the PyTorch
# variants; ONNX Runtime on a GPU needs onnxruntime-gpu, which the project does not pin). The paper-sized pair
# runs as architectures with random weights (latency does not depend on them): config/rmt_ppad_l.yaml and the
# pruned student's model.yaml that `bash benchmarks/run_cpu.sh` writes; the demo pair is the bundled checkpoints
# resized to 640x640. PPAD_PYTHON picks the interpreter (default .venv/bin/python), PPAD_BENCH_OUT the folder.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PPAD_PYTHON:-.venv/bin/python}"
OUT="${PPAD_BENCH_OUT:-runs/bench}"
PAPER_STUDENT="${PPAD_PAPER_STUDENT:-runs/bench/paper_student/model.yaml}"
mkdir -p "$OUT"
bench() { "$PYTHON" -m ppad_core.cli bench --device cuda --variants torch --runs 100 --warmup 20 "$@"; }
bench config/rmt_ppad_l.yaml "$PAPER_STUDENT" --labels paper-teacher paper-student \
  --json-out "$OUT/gpu_paper.json" --markdown "$OUT/gpu_paper.md"
bench models/rmt_ppad_s_demo models/rmt_ppad_s_demo_student --labels demo-teacher demo-student --input-size 640 640 \
  --json-out "$OUT/gpu_demo.json" --markdown "$OUT/gpu_demo.md"
