#!/usr/bin/env bash
# The README's test command: set up everything, lint, run the whole test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
source scripts/ros_env.sh
export PPAD_REQUIRE_ROS=1  # the ROS tests fail (rather than skip) if the underlay is missing
VENV="${PPAD_VENV:-.venv}"

echo "[test] ruff"
"$VENV/bin/ruff" check .
echo "[test] pytest"
set +e
"$VENV/bin/python" -m pytest "$@"
status=$?
set -e
if [ "$status" -eq 5 ]; then
  echo "[test] pytest collected no tests" >&2
  exit 1
fi
exit "$status"
