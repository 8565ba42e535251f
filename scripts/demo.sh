#!/usr/bin/env bash
# The README's demo command: set up, then show the bundled small model and the paper model running.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
source scripts/ros_env.sh
VENV="${PPAD_VENV:-.venv}"

echo "[demo] the small model (CPU demos and tests): architecture and a timed forward pass"
"$VENV/bin/ppad" info rmt_ppad_s --latency 10
echo "[demo] the paper model (RMT-PPAD, 640x640): parameters before/after fusion, MACs, one forward pass"
"$VENV/bin/ppad" info rmt_ppad_l --latency 2
