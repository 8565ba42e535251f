#!/usr/bin/env bash
# Reproduces the bundled demo weights (models/rmt_ppad_s_demo): procedural scenes, then rmt_ppad_s trained
# from scratch on them with config/train_synthetic_s.yaml, then scored on 200 held-out scenes of a new seed.
# About 80 minutes on a 2-core CPU. Re-running resumes an interrupted training run.
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
