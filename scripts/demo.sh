#!/usr/bin/env bash
# The README's demo command: set up, then run the perception node (student profile, then teacher) on
# the bundled sample drive by live replay of its bag, and print accuracy, latency and drops side by side.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
source scripts/ros_env.sh
VENV="${PPAD_VENV:-.venv}"
PY="$VENV/bin/python"
BAG=sample/synthetic_drive
NS=/perception_demo
OUT=runs/demo
mkdir -p "$OUT"

node_pid=""
stop_node() {
  if [ -n "$node_pid" ] && kill -0 "$node_pid" 2>/dev/null; then
    kill -INT "$node_pid" && wait "$node_pid" || true
  fi
  node_pid=""
}
trap stop_node EXIT

replay() {  # replay PROFILE CHECKPOINT [extra bag_eval args]
  local profile=$1 checkpoint=$2
  shift 2
  mkdir -p "$OUT/$profile"
  echo "[demo] $profile: starting perception_node (config/$profile.yaml) under $NS"
  "$PY" -m ppad_ros.perception_node --ros-args --params-file "config/$profile.yaml" \
    -p input_transport:=compressed -r "__ns:=$NS" >"$OUT/$profile/node.log" 2>&1 &
  node_pid=$!
  echo "[demo] $profile: live replay of $BAG (24 frames at the recorded 10 Hz)"
  "$PY" -m ppad_ros.bag_eval "$BAG" --mode live --namespace "$NS" --checkpoint "$checkpoint" \
    --label "$profile" --out "$OUT/$profile" "$@"
  stop_node
}

replay student models/rmt_ppad_s_demo_student
replay teacher models/rmt_ppad_s_demo --compare "$OUT/student/summary.json"
echo "[demo] overlays, per-frame results and plots: $OUT/student/ and $OUT/teacher/ (overlay_*.jpg, frames.jsonl, frames.png)"
