"""Node overhead at 1280x720: message in -> all outputs published, minus model inference time.

Runs the real PerceptionNode (student profile by default, real publishers) in this process and hands
it N identical 1280x720 bgr8 sensor_msgs/Image messages through the same path the subscription uses;
the node's own stage timings (decode, preprocess, inference, postprocess, publish) are reported.
DDS delivery of the input image is not part of the figure. From the repository root, after
`source scripts/ros_env.sh`:

    python benchmarks/node_overhead.py [--profile student] [--frames 30] [--overlay]
"""

from __future__ import annotations

import argparse
import json
import time

import rclpy
import yaml
from rclpy.parameter import Parameter
from sensor_msgs.msg import Image

from ppad_core.data.synth import render_scene
from ppad_ros.image_conversion import fill_image
from ppad_ros.perception_node import PerceptionNode

STAGES = ("decode", "preprocess", "inference", "postprocess", "publish", "node_overhead")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--profile", default="student", choices=("teacher", "student"))
    parser.add_argument("--frames", type=int, default=30)
    parser.add_argument("--overlay", action="store_true", help="render and publish debug/overlay for every frame")
    args = parser.parse_args()
    profile = yaml.safe_load(open(f"config/{args.profile}.yaml"))["/**"]["ros__parameters"]
    rclpy.init()
    node = PerceptionNode(
        parameter_overrides=[Parameter(k, value=v) for k, v in profile.items()]
        + [Parameter("warmup_iterations", value=3)]
    )
    node.on_configure(None)
    node.on_activate(None)
    if args.overlay:  # the overlay is rendered only while subscribed
        node.create_subscription(Image, "debug/overlay", lambda m: None, 1)
    msg = fill_image(Image(), render_scene(seed=31, split="val", index=0).image, "bgr8")
    for _ in range(args.frames):
        node._process_batch([("", (msg, time.perf_counter()))])
    summary = node.camera_stats[""].summary()
    node.on_deactivate(None)
    node.destroy_node()
    rclpy.shutdown()
    result = {"profile": args.profile, "frame": "1280x720 bgr8", "overlay": args.overlay, "frames": args.frames}
    result.update({stage: {k: summary[f"{stage}_ms_{k}"] for k in ("mean", "p95")} for stage in STAGES})
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
