#!/usr/bin/env bash
# Reproduces the bundled sample drive: 24 synthetic scenes (640x360, seed 9, never used for training)
# with their labels in sample/synthetic, and the bag sample/synthetic_drive (MCAP, CompressedImage
# holding the scenes' own JPEG bytes, /camera/image_raw at 10 Hz) that the README demo replays.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${PPAD_VENV:-.venv}"
rm -rf sample/synthetic sample/synthetic_drive
"$VENV/bin/ppad" synth sample/synthetic --train 0 --val 24 --seed 9 --width 640 --height 360 --workers 1
rm -rf sample/synthetic/images/train2017 sample/synthetic/labels/train2017 sample/synthetic/mask/*/train2017
"$VENV/bin/bag_from_images" sample/synthetic --out sample/synthetic_drive --compressed --rate 10 \
  --topic /camera/image_raw --frame-id camera
du -sh sample
