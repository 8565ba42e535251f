"""Node overhead at 1280x720: message in -> all outputs published, minus model inference time.

Starts perception_node (student profile by default) in its own process, publishes N frames at a rate
the model keeps up with, and reads the node's own per-stage timings from /diagnostics.
Run from the repository root after `source scripts/ros_env.sh`:

    python benchmarks/node_overhead.py [--profile student] [--frames 40] [--overlay]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "test"))

from ros_helpers import NodeProcess, Probe  # noqa: E402
from sensor_msgs.msg import Image  # noqa: E402

from ppad_core.data.synth import render_scene  # noqa: E402

STAGES = ("decode", "preprocess", "inference", "postprocess", "publish", "node_overhead", "end_to_end")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--profile", default="student", choices=("teacher", "student"))
    parser.add_argument("--frames", type=int, default=40)
    parser.add_argument("--rate", type=float, default=4.0, help="frames per second (below the model's rate)")
    parser.add_argument("--overlay", action="store_true", help="also subscribe to debug/overlay (rendered then)")
    args = parser.parse_args()
    log = Path(tempfile.mkdtemp()) / "node.log"
    overrides = {"diagnostics_period_s": 0.2, "publish_overlay": args.overlay}
    node = NodeProcess("/overhead", REPO / "config" / f"{args.profile}.yaml", overrides, log)
    probe = Probe("/overhead")
    try:
        probe.wait_ready(node)
        if args.overlay:
            probe.node.create_subscription(Image, "/overhead/debug/overlay", lambda m: None, 5)
        frame = render_scene(seed=31, split="val", index=0).image
        before = int(probe.diagnostics()["frames_processed"])
        for i in range(args.frames):
            probe.publish(frame, 2_000_000_000 + i)
            time.sleep(1 / args.rate)
        time.sleep(2)
        diagnostics = probe.diagnostics()
    finally:
        probe.close()
        node.stop()
    processed = int(diagnostics["frames_processed"]) - before
    result = {"profile": args.profile, "frame": "1280x720 bgr8", "overlay": args.overlay, "processed": processed}
    for stage in STAGES:
        result[stage] = {k: float(diagnostics[f"{stage}_ms_{k}"]) for k in ("mean", "p95")}
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
