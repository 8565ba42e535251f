#!/usr/bin/env bash
# The README's demo command: set up, then show the bundled demo model at work on held-out synthetic scenes.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
source scripts/ros_env.sh
PPAD="${PPAD_VENV:-.venv}/bin/ppad"
DEMO=runs/demo

echo "[demo] the bundled demo model: architecture, parameters, MACs, forward latency"
"$PPAD" info models/rmt_ppad_s_demo --latency 10
if [ ! -f "$DEMO/scenes/.complete" ]; then
  echo "[demo] rendering 100 synthetic driving scenes it has never seen (seed 7)"
  "$PPAD" synth "$DEMO/scenes" --train 0 --val 100 --seed 7
  touch "$DEMO/scenes/.complete"
fi
echo "[demo] scoring it with the RMT-PPAD protocol"
"$PPAD" eval models/rmt_ppad_s_demo --data "$DEMO/scenes" --plots "$DEMO/plots" --json "$DEMO/eval.json"
echo "[demo] the paper model (RMT-PPAD, 640x640): parameters before/after fusion, MACs, one forward pass"
"$PPAD" info rmt_ppad_l --latency 2
