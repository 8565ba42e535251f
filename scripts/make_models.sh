#!/usr/bin/env bash
# Reproduces the bundled demo weights: models/rmt_ppad_s_demo (procedural scenes, rmt_ppad_s trained from
# scratch with config/train_synthetic_s.yaml, scored on 200 held-out scenes of a new seed; about 95 minutes
# on a 2-core CPU, resumable) and its compressed student models/rmt_ppad_s_demo_student (`ppad compress`, below).
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
"$PPAD" eval "$RUN/best" --data data/synthetic_heldout --json-out "$RUN/heldout_eval.json"
rm -rf models/rmt_ppad_s_demo
mkdir -p models
cp -r "$RUN/best" models/rmt_ppad_s_demo
echo "[make_models] wrote models/rmt_ppad_s_demo"

# The demo student: `ppad compress` of the demo teacher with the head in scope (backbone, encoder, the head's
# input projections and GCA adapters, the seg decoder), 33.5 % fewer parameters with kept widths rounded up
# to even counts and the seg decoder fixed at half its width (its full-resolution layers cost latency, not
# parameters). Distillation runs in two phases, as the shipped student was made: 16 epochs, then the same
# run resumed with a 24-epoch schedule (the cosine is recomputed, so epochs 17-24 are a warm restart).
# Then its detection decoder is cut to its first layer (`--decoder-layers 1`: a decoder layer costs a fixed
# time per frame that channel pruning cannot remove; every layer's heads were trained by the auxiliary
# losses) and the cut student is distilled again for 4 epochs at a quarter of the learning rate.
# About 2.5 hours on the 2-core CPU; an interrupted phase is resumed.
COMPRESS=runs/compress_demo_student
STATE="$COMPRESS/distill/last_state.pt"
if [ ! -f "$COMPRESS/.first_phase_complete" ]; then
  resume=()
  if [ -f "$STATE" ]; then resume=(--resume); fi
  "$PPAD" compress models/rmt_ppad_s_demo --out "$COMPRESS" --scope backbone+encoder+head --round-to 2 \
    --module-ratio head.segmenter=0.5 --set epochs=16 --set val_every=4 "${resume[@]}" --no-compare --no-progress
  touch "$COMPRESS/.first_phase_complete"
fi
"$PPAD" compress models/rmt_ppad_s_demo --out "$COMPRESS" --resume --set epochs=24 --no-progress
"$PPAD" eval "$COMPRESS/student" --data data/synthetic_heldout --json-out "$COMPRESS/heldout_eval.json"

ONE_LAYER=runs/compress_demo_student_1layer
if [ ! -f "$ONE_LAYER/truncated/model.yaml" ]; then
  "$PPAD" prune "$COMPRESS/student" --out "$ONE_LAYER/truncated" --target 0 --decoder-layers 1 --no-compare --no-progress
fi
resume=()
if [ -f "$ONE_LAYER/distill/last_state.pt" ]; then resume=(--resume); fi
"$PPAD" distill "$ONE_LAYER/truncated" --teacher models/rmt_ppad_s_demo --run-dir "$ONE_LAYER/distill" \
  --set epochs=4 --set optimizer.lr=0.00005 --set val_every=2 --set close_mosaic=1 "${resume[@]}" \
  --eval-data data/synthetic_heldout --no-progress
rm -rf models/rmt_ppad_s_demo_student
cp -r "$ONE_LAYER/distill/best" models/rmt_ppad_s_demo_student
echo "[make_models] wrote models/rmt_ppad_s_demo_student"
