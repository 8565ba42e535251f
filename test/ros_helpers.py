"""Real rclpy plumbing for the ROS tests: the node under test in its own process, and a probe node in
this process that publishes camera frames and records everything the node publishes."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections import defaultdict
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml

if os.environ.get("PPAD_REQUIRE_ROS"):
    import rclpy  # the README test command installs ROS 2: a missing rclpy is a failure there
else:
    rclpy = pytest.importorskip("rclpy")

from diagnostic_msgs.msg import DiagnosticArray  # noqa: E402
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy  # noqa: E402
from sensor_msgs.msg import CompressedImage, Image  # noqa: E402
from vision_msgs.msg import Detection2DArray, LabelInfo  # noqa: E402

from ppad_core.runtime.benchmark import process_memory_kb  # noqa: E402
from ppad_core.runtime.options import KNOBS  # noqa: E402
from ppad_ros.background_spin import BackgroundSpinner  # noqa: E402
from ppad_ros.image_conversion import fill_image  # noqa: E402
from ppad_ros.msg import PerceptionResult  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
FASTDDS_PROFILE = REPO / "config" / "fastdds_localhost.xml"
OUTPUTS = {
    "detections": Detection2DArray,
    "drivable_area/mask": Image,
    "lane_lines/mask": Image,
    "perception": PerceptionResult,
    "debug/overlay": Image,
}
LATCHED = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL)


def ros_environment() -> dict[str, str]:
    env = dict(os.environ)
    env["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"  # never leave the machine
    # under LOCALHOST rmw_fastrtps ignores FASTDDS_BUILTIN_TRANSPORTS; its 512 KiB shared-memory segment loses
    # megabyte samples (README, "Transport")
    env.setdefault("FASTDDS_DEFAULT_PROFILES_FILE", str(FASTDDS_PROFILE))
    env.setdefault("ROS_DOMAIN_ID", str(100 + os.getpid() % 100))
    env["PYTHONUNBUFFERED"] = "1"
    return env


def profile_values(params_file: Path) -> dict:
    """The parameters a profile (config/teacher.yaml, config/student.yaml) sets for every node."""
    return yaml.safe_load(params_file.read_text())["/**"]["ros__parameters"]


def profile_flags(params_file: Path) -> list[str]:
    """The `ppad` runtime flags that run a model as the node does with this profile (backend, device, precision,
    layout): the reference a test compares the node's outputs with."""
    values = profile_values(params_file)
    flags = [part for name in ("backend", "device", "precision") for part in (KNOBS[name].flag, str(values[name]))]
    return flags + (["--channels-last"] if values["channels_last"] else [])


def flood_rate_hz(diagnostics: dict[str, str], least_hz: float = 30.0) -> float:
    """A publishing rate the node cannot keep up with: three frames per end-to-end time it reports, and at least
    `least_hz` (a camera's 30 Hz floods only a node slower than 33 ms a frame)."""
    per_frame_ms = float(diagnostics.get("end_to_end_ms_mean") or 0.0)
    return max(least_hz, 3000.0 / per_frame_ms) if per_frame_ms > 0 else least_hz


class NodeProcess:
    """`python -m ppad_ros.perception_node` with a params file and overrides, in namespace `ns`."""

    def __init__(
        self, ns: str, params_file: Path, overrides: dict[str, object], log: Path, remaps: dict[str, str] | None = None
    ) -> None:
        args = [sys.executable, "-m", "ppad_ros.perception_node", "--ros-args", "--params-file", str(params_file)]
        for key, value in overrides.items():
            args += ["-p", f"{key}:={str(value).lower() if isinstance(value, bool) else value}"]
        args += ["-r", f"__ns:={ns}"]
        for source, target in (remaps or {}).items():  # `-r source:=target`, e.g. image:=/camera/image_raw
            args += ["-r", f"{source}:={target}"]
        self.log = log
        self.process = subprocess.Popen(
            args, cwd=REPO, env=ros_environment(), stdout=open(log, "w"), stderr=subprocess.STDOUT
        )

    def output(self) -> str:
        return self.log.read_text()

    def resident_mb(self) -> float:
        """The node process's resident memory (VmRSS)."""
        return process_memory_kb(self.process.pid)["VmRSS"] / 1024

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(2)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode


class Probe:
    """Publishes frames to `<ns>/image` and records every output of the node under `ns`; `status` names the
    node's /diagnostics status it reads (default `<ns>/perception`; `<node ns>/perception/<camera>` for a camera)."""

    def __init__(self, ns: str, status: str = "") -> None:
        if not rclpy.ok():
            rclpy.init()
        self.ns = ns
        self.status = status or f"{ns}/perception"
        self.node = rclpy.create_node(f"probe_{ns.strip('/').replace('/', '_')}")
        self.lock = threading.Lock()
        self.received: dict[str, list] = defaultdict(list)
        self.arrival: dict[str, list] = defaultdict(list)
        # a reliable writer serves best-effort readers (the node's default) as best effort, and reliable
        # readers (a node given a QoS override) with retransmission of lost fragments
        writer = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
        self.image_pub = self.node.create_publisher(Image, f"{ns}/image", writer)
        self.compressed_pub = self.node.create_publisher(CompressedImage, f"{ns}/image/compressed", writer)
        for topic, message_type in OUTPUTS.items():
            self.node.create_subscription(message_type, f"{ns}/{topic}", self._recorder(topic), 50)
        self.node.create_subscription(DiagnosticArray, "/diagnostics", self._recorder("diagnostics"), 50)
        self.spinner = BackgroundSpinner(self.node)

    def _recorder(self, topic: str):
        def record(msg) -> None:
            with self.lock:
                self.received[topic].append(msg)
                self.arrival[topic].append(time.monotonic())

        return record

    def record(self, topics: dict[str, type], depth: int = 50) -> None:
        """Also record `topics` (relative to `ns`, or absolute) -> message type, e.g. the road/* outputs."""
        for topic, message_type in topics.items():
            name = topic if topic.startswith("/") else f"{self.ns}/{topic}"
            self.node.create_subscription(message_type, name, self._recorder(topic), depth)

    def messages(self, topic: str) -> list:
        with self.lock:
            return list(self.received[topic])

    def latched(self, topic: str, timeout: float = 5.0) -> list:
        """Subscribe now (late) with transient-local QoS and return what arrives."""
        got: list = []
        subscription = self.node.create_subscription(LabelInfo, f"{self.ns}/{topic}", got.append, LATCHED)
        wait_for(lambda: got, timeout)
        self.node.destroy_subscription(subscription)
        return got

    def diagnostics(self) -> dict[str, str]:
        """Key-values of the latest status from the node under test."""
        for message in reversed(self.messages("diagnostics")):
            for status in message.status:
                if status.name == f"ppad: {self.status}":
                    values = {kv.key: kv.value for kv in status.values}
                    return values | {"_message": status.message, "_level": int.from_bytes(status.level, "little")}
        return {}

    def settled_diagnostics(self, settle_s: float = 0.6, timeout: float = 20.0) -> dict[str, str]:
        """The latest status once the node's frame counters have not moved for `settle_s` (three status periods at
        0.2 s): the baseline of a test that counts frames. Priming frames still in flight when `wait_ready` saw its
        first output are received after it returns, so a status taken at once can miss them."""
        counters = ("frames_received", "frames_processed", "frames_dropped", "frames_rejected")
        last, since, deadline = None, time.monotonic(), time.monotonic() + timeout
        while time.monotonic() < deadline:
            status = self.diagnostics()
            counts = tuple(status.get(key) for key in counters)
            if counts != last:
                last, since = counts, time.monotonic()
            elif time.monotonic() - since >= settle_s:
                return status
            time.sleep(0.05)
        raise AssertionError(f"the node's frame counters never settled: {last}")

    def publish(self, image_bgr, stamp_ns: int, frame_id: str = "camera", encoding: str = "bgr8") -> Image:
        msg = fill_image(Image(), image_bgr, encoding)
        msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(stamp_ns, 1_000_000_000)
        msg.header.frame_id = frame_id
        self.image_pub.publish(msg)
        return msg

    def publish_message(self, msg) -> None:
        (self.compressed_pub if isinstance(msg, CompressedImage) else self.image_pub).publish(msg)

    def wait_ready(self, node: NodeProcess, timeout: float = 90.0) -> None:
        def ready() -> bool:
            if node.process.poll() is not None:
                raise AssertionError(f"node exited with {node.process.returncode}:\n{node.output()}")
            return self.diagnostics().get("_message", "").startswith("ready") and (
                self.image_pub.get_subscription_count() + self.compressed_pub.get_subscription_count() > 0
            )

        wait_for(ready, timeout, f"node not ready:\n{node.output()}")
        # the first samples can precede the data connection: prime the path with small frames
        tiny = np.zeros((48, 64, 3), np.uint8)
        compressed = CompressedImage(format="jpeg")
        compressed.header.stamp.nanosec = 1
        compressed.data = cv2.imencode(".jpg", tiny)[1].tobytes()

        def primed() -> bool:  # one of the two matches the node's input_transport
            self.publish(tiny, 1)
            self.compressed_pub.publish(compressed)
            time.sleep(0.2)
            return any(stamp_of(m) == 1 for m in self.messages("detections"))

        wait_for(primed, timeout, f"no output for priming frames:\n{node.output()}")

    def close(self) -> None:
        self.spinner.stop()


def wait_for(condition, timeout: float, message: str = "timed out") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.05)
    raise AssertionError(message)


def stamp_of(msg) -> int:
    return msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec
