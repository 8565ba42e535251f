"""Node overhead at 1280x720: message in -> all outputs published, minus model inference time.

Runs the real PerceptionNode (student profile by default, real publishers) in this process and hands
it N identical 1280x720 bgr8 sensor_msgs/Image messages through the same path the subscription uses;
the node's own stage timings (decode, preprocess, inference, postprocess, publish) are reported.
DDS delivery of the input image is not part of the figure. From the repository root, after
`source scripts/ros_env.sh`:

    python benchmarks/node_overhead.py [--profile student] [--frames 30] [--overlay] [--road-geometry]

With --road-geometry the node also gets the scene camera's CameraInfo and publishes `road/*` for every
frame; `geometry` is that step's time (extraction and the five messages), after the image outputs.
"""

from __future__ import annotations

import argparse
import json
import time

import rclpy
import yaml
from rclpy.parameter import Parameter
from sensor_msgs.msg import CameraInfo, Image

from ppad_core.data.scene_geometry import scene_ground_truth
from ppad_core.data.synth import render_scene
from ppad_ros.bag_io import camera_info_message
from ppad_ros.image_conversion import fill_image
from ppad_ros.perception_node import PerceptionNode

STAGES = ("decode", "preprocess", "inference", "postprocess", "publish", "node_overhead", "geometry")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--profile", default="student", choices=("teacher", "student"))
    parser.add_argument("--frames", type=int, default=30)
    parser.add_argument("--overlay", action="store_true", help="render and publish debug/overlay for every frame")
    parser.add_argument("--road-geometry", action="store_true", help="camera_info in, road/* out for every frame")
    args = parser.parse_args()
    profile = yaml.safe_load(open(f"config/{args.profile}.yaml"))["/**"]["ros__parameters"]
    rclpy.init()
    node = PerceptionNode(
        parameter_overrides=[Parameter(k, value=v) for k, v in profile.items()]
        + [Parameter("warmup_iterations", value=3)]
        + [Parameter("road_geometry", value=args.road_geometry)]
    )
    node.on_configure(None)
    node.on_activate(None)
    if args.overlay:  # the overlay is rendered only while subscribed
        node.create_subscription(Image, "debug/overlay", lambda m: None, 1)
    scene = render_scene(seed=31, split="val", index=0)
    msg = fill_image(Image(), scene.image, "bgr8")
    if args.road_geometry:
        truth = scene_ground_truth(scene)
        info = camera_info_message(truth.intrinsic, truth.width, truth.height, 0, "camera")
        node._on_camera_info("", to_ros_camera_info(info))
    for _ in range(args.frames):
        node._process_batch([("", (msg, time.perf_counter()))])
    summary = node.camera_stats[""].summary()
    node.on_deactivate(None)
    node.destroy_node()
    rclpy.shutdown()
    result = {"profile": args.profile, "frame": "1280x720 bgr8", "overlay": args.overlay, "frames": args.frames}
    result["road_geometry"] = args.road_geometry
    stages = [stage for stage in STAGES if f"{stage}_ms_mean" in summary]
    result.update({stage: {k: summary[f"{stage}_ms_{k}"] for k in ("mean", "p95")} for stage in stages})
    print(json.dumps(result, indent=2))
    return 0


def to_ros_camera_info(info) -> CameraInfo:
    """The rosbags CameraInfo as an rclpy message (the node's callback takes the latter)."""
    out = CameraInfo(width=info.width, height=info.height, distortion_model=info.distortion_model)
    out.header.frame_id = info.header.frame_id
    out.d, out.k, out.r, out.p = list(info.d), list(info.k), list(info.r), list(info.p)
    return out


if __name__ == "__main__":
    raise SystemExit(main())
