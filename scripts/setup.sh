#!/usr/bin/env bash
# Idempotent environment set-up: a virtual environment with the CPU build of torch 2.13.0 and ppad
# installed in editable mode with its development tools. Safe to run any number of times.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV="${PPAD_VENV:-.venv}"
PYTHON="${PYTHON:-python3}"

if [ ! -x "$VENV/bin/python" ]; then
  echo "[setup] creating virtual environment $VENV"
  "$PYTHON" -m venv "$VENV"
fi
if ! "$VENV/bin/python" -c "import torch, sys; sys.exit(not torch.__version__.startswith('2.13.0'))" 2>/dev/null; then
  echo "[setup] installing torch==2.13.0 (CPU build)"
  "$VENV/bin/pip" install --quiet torch==2.13.0 2> >(grep -v "is ignored: it is neither a file nor a directory" >&2)
fi
echo "[setup] installing ppad (editable) and its dependencies"
PYTHONWARNINGS=ignore "$VENV/bin/pip" install --quiet --disable-pip-version-check -e ".[dev]" \
  2> >(grep -v "is ignored: it is neither a file nor a directory" >&2)
bash scripts/ros_underlay.sh
