"""N cameras into one batched perception node vs N single-camera nodes, side by side in one run.

For each N, N cameras publish 1280x720 bgr8 frames at a fixed rate, first into one node serving all of them
(`cameras: [cam0, ...]`, one model, batched), then into N single-camera nodes (one model each). Reported per
configuration: processed frames per second per camera (min and mean) and in total, end-to-end latency (publish
-> detections received, over DDS on loopback) p50/p95 per camera (the worst camera's), and the total resident
memory of the node processes (sum of VmRSS, the largest sum seen). The camera subscriptions are made reliable
(as in the tests) so that DDS losses on a busy machine do not count as the node's. From the repository root,
after `source scripts/ros_env.sh`:

    python benchmarks/multi_camera.py --cameras 1 2 4 6 --seconds 20 --rate 10 [--markdown out.md]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import threading
import time
from collections import defaultdict
from pathlib import Path

import cv2
import numpy as np
import rclpy
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import Image
from vision_msgs.msg import Detection2DArray

from ppad_core.data.synth import render_scene
from ppad_core.runtime.benchmark import process_memory_kb
from ppad_ros.background_spin import BackgroundSpinner
from ppad_ros.image_conversion import fill_image

REPO = Path(__file__).resolve().parent.parent
COLUMNS = (
    "N",
    "node(s)",
    "fps/camera min",
    "fps/camera mean",
    "fps total",
    "latency p50 ms (worst camera)",
    "latency p95 ms (worst camera)",
    "resident MB (sum)",
)


class Cameras:
    """Publishes every camera's frames and records when each camera's detections come back."""

    def __init__(self, topics: dict[str, tuple[str, str]], frame: Image) -> None:
        """`topics`: camera -> (its input topic, its detections topic)."""
        self.node = rclpy.create_node(f"multi_camera_bench_{os.getpid()}_{len(topics)}_{int(time.time())}")
        self.frame = frame
        self.lock = threading.Lock()
        self.sent: dict[int, float] = {}
        self.latencies: dict[str, list[float]] = defaultdict(list)
        writer = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
        self.publishers = {
            camera: self.node.create_publisher(Image, image, writer) for camera, (image, _) in topics.items()
        }
        for camera, (_, detections) in topics.items():
            self.node.create_subscription(Detection2DArray, detections, self._recorder(camera), 50)
        self.spinner = BackgroundSpinner(self.node)

    def _recorder(self, camera: str):
        def record(msg: Detection2DArray) -> None:
            stamp = msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec
            with self.lock:
                if stamp in self.sent:
                    self.latencies[camera].append(time.monotonic() - self.sent[stamp])

        return record

    def wait_connected(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while any(publisher.get_subscription_count() == 0 for publisher in self.publishers.values()):
            if time.monotonic() > deadline:
                raise RuntimeError("the node(s) never subscribed to every camera")
            time.sleep(0.2)

    def publish_for(self, seconds: float, rate_hz: float, stamp_base: int) -> None:
        """Every camera at `rate_hz`, cameras spread evenly over each period; stamps unique per frame."""
        period, cameras = 1.0 / rate_hz, list(self.publishers)
        start, tick = time.monotonic(), 0
        while time.monotonic() - start < seconds:
            for index, camera in enumerate(cameras):
                due = start + (tick + index / len(cameras)) * period
                time.sleep(max(0.0, due - time.monotonic()))
                stamp = stamp_base + (tick * len(cameras) + index) * 1000
                self.frame.header.stamp.sec, self.frame.header.stamp.nanosec = divmod(stamp, 1_000_000_000)
                with self.lock:
                    self.sent[stamp] = time.monotonic()
                self.publishers[camera].publish(self.frame)
            tick += 1

    def reset(self) -> None:
        with self.lock:
            self.sent.clear()
            self.latencies.clear()

    def close(self) -> None:
        self.spinner.stop()


def start_node(ns: str, cameras: list[str], profile: str, log: Path) -> subprocess.Popen:
    """A perception node under `ns` (a single-camera node when `cameras` is empty), camera subscriptions reliable."""
    args = [sys.executable, "-m", "ppad_ros.perception_node", "--ros-args"]
    args += ["--params-file", str(REPO / "config" / f"{profile}.yaml"), "-p", "publish_overlay:=false"]
    for topic in [f"{ns}/{camera}/image" for camera in cameras] or [f"{ns}/image"]:
        args += ["-p", f"qos_overrides.{topic}.subscription.reliability:=reliable"]
    if cameras:
        args += ["-p", f"cameras:=[{','.join(cameras)}]"]
    args += ["-r", f"__ns:={ns}"]
    return subprocess.Popen(args, cwd=REPO, stdout=open(log, "w"), stderr=subprocess.STDOUT)


def resident_mb(processes: list[subprocess.Popen]) -> float:
    """Sum of the processes' VmRSS."""
    return sum(process_memory_kb(process.pid).get("VmRSS", 0) for process in processes) / 1024


def layouts(n: int) -> dict[str, tuple[str, list[str], dict[str, tuple[str, str]]]]:
    """Per configuration: the nodes to start (namespace, cameras) and each camera's (input, detections) topics."""
    cameras = [f"cam{i}" for i in range(n)]
    batched_ns = f"/multi_camera_bench/n{n}/batched"
    batched = {c: (f"{batched_ns}/{c}/image", f"{batched_ns}/{c}/detections") for c in cameras}
    singles = {c: (f"/multi_camera_bench/n{n}/{c}/image", f"/multi_camera_bench/n{n}/{c}/detections") for c in cameras}
    return {
        "1 batched": ([(batched_ns, cameras)], batched),
        f"{n} single": ([(f"/multi_camera_bench/n{n}/{c}", []) for c in cameras], singles),
    }


def measure(nodes, topics, args, frame: Image, logs: Path) -> dict[str, float]:
    """Start `nodes`, publish for `args.seconds` after a warm-up, and summarise; the nodes are stopped after."""
    processes = [
        start_node(ns, cameras, args.profile, logs / f"{ns.strip('/').replace('/', '_')}.log") for ns, cameras in nodes
    ]
    cameras = Cameras(topics, frame)
    try:
        cameras.wait_connected(args.start_timeout)
        cameras.publish_for(args.warmup, args.rate, 1_000_000_000_000)
        time.sleep(1.0)
        cameras.reset()
        peak = [0.0]
        sampler = threading.Thread(target=_sample_memory, args=(processes, args.seconds, peak), daemon=True)
        sampler.start()
        cameras.publish_for(args.seconds, args.rate, 2_000_000_000_000)
        time.sleep(2.0)  # the last frames' outputs
        sampler.join()
        return _summary(cameras, args.seconds, peak[0])
    finally:
        cameras.close()
        for process in processes:
            process.send_signal(2)
        for process in processes:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()


def _sample_memory(processes, seconds: float, peak: list[float]) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        peak[0] = max(peak[0], resident_mb(processes))
        time.sleep(1.0)


def _summary(cameras: Cameras, seconds: float, resident: float) -> dict[str, float]:
    with cameras.lock:
        latencies = {camera: np.array(cameras.latencies[camera]) * 1e3 for camera in cameras.publishers}
    fps = [len(values) / seconds for values in latencies.values()]
    worst = [values for values in latencies.values() if len(values)]
    return {
        "fps/camera min": min(fps),
        "fps/camera mean": float(np.mean(fps)),
        "fps total": sum(fps),
        "latency p50 ms (worst camera)": max((float(np.percentile(v, 50)) for v in worst), default=float("nan")),
        "latency p95 ms (worst camera)": max((float(np.percentile(v, 95)) for v in worst), default=float("nan")),
        "resident MB (sum)": resident,
    }


def markdown(rows: list[dict]) -> str:
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    for row in rows:
        cells = [row[column] if isinstance(row[column], str) else f"{row[column]:.1f}" for column in COLUMNS]
        lines.append("| " + " | ".join(str(cell) for cell in cells) + " |")
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cameras", type=int, nargs="+", default=[1, 2, 4, 6], help="values of N (default 1 2 4 6)")
    parser.add_argument("--seconds", type=float, default=20.0, help="measured seconds per configuration")
    parser.add_argument("--warmup", type=float, default=5.0, help="seconds of frames before measuring")
    parser.add_argument("--rate", type=float, default=10.0, help="frames per second of each camera")
    parser.add_argument("--profile", default="student", choices=("teacher", "student"))
    parser.add_argument("--start-timeout", type=float, default=180.0, help="seconds for the nodes to subscribe")
    parser.add_argument("--logs", type=Path, default=REPO / "runs" / "multi_camera", help="node logs")
    parser.add_argument("--markdown", type=Path, help="also write the table here")
    args = parser.parse_args()
    args.logs.mkdir(parents=True, exist_ok=True)
    rclpy.init()
    frame = fill_image(Image(), cv2.resize(render_scene(seed=31, split="val", index=0).image, (1280, 720)), "bgr8")
    rows = []
    for n in args.cameras:
        for label, (nodes, topics) in layouts(n).items():
            rows.append({"N": str(n), "node(s)": label, **measure(nodes, topics, args, frame, args.logs)})
            print(markdown(rows[-1:]).splitlines()[-1], flush=True)
    rclpy.shutdown()
    table = markdown(rows)
    print(table)
    if args.markdown:
        args.markdown.write_text(table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
