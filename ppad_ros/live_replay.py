"""Live replay for bag_eval: publish a bag's frames to a running perception node at the recorded rate
and match its `perception` outputs by header stamp."""

from __future__ import annotations

import array
import threading
import time

import numpy as np
import rclpy
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.qos import qos_profile_sensor_data
from sensor_msgs.msg import CompressedImage, Image

from ppad_core.evaluate.metrics import MetricAccumulator
from ppad_core.model.config import ModelConfig
from ppad_ros.background_spin import BackgroundSpinner
from ppad_ros.bag_io import COMPRESSED, BagError, BagFrame
from ppad_ros.messages import result_prediction
from ppad_ros.msg import PerceptionResult
from ppad_ros.replay import LabelSource, Replay, decode, score_published

NODE_COUNTERS = ("frames_received", "frames_processed", "frames_dropped", "frames_rejected", "frames_lost_transport")
SETTLE_S = 3.0  # after the last frame: wait this long without new outputs before concluding
# Seeing the node's subscription only proves this side discovered it; the node discovers this publisher a
# moment later, and frames published before that are lost. One second covers discovery on loopback.
CONNECTION_SETTLE_S = 1.0


def to_ros(frame: BagFrame):
    """The bag's message as an rclpy message, bytes untouched."""
    msg = frame.msg
    data = array.array("B")
    data.frombytes(np.ascontiguousarray(msg.data).tobytes())
    if msg.__msgtype__ == COMPRESSED:
        out = CompressedImage(format=msg.format, data=data)
    else:
        out = Image(
            height=msg.height,
            width=msg.width,
            encoding=msg.encoding,
            is_bigendian=msg.is_bigendian,
            step=msg.step,
            data=data,
        )
    out.header.stamp.sec, out.header.stamp.nanosec = msg.header.stamp.sec, msg.header.stamp.nanosec
    out.header.frame_id = msg.header.frame_id
    return out


class _Collector:
    def __init__(self, namespace: str) -> None:
        if not rclpy.ok():
            rclpy.init()
        self.node = rclpy.create_node("bag_eval")
        self.lock = threading.Lock()
        self.outputs: dict[int, tuple[float, PerceptionResult]] = {}
        self.diagnostics: dict[str, str] = {}
        self.diagnostics_time = 0.0
        self.namespace = namespace.rstrip("/")
        self.image_pub = self.node.create_publisher(Image, f"{self.namespace}/image", qos_profile_sensor_data)
        self.compressed_pub = self.node.create_publisher(
            CompressedImage, f"{self.namespace}/image/compressed", qos_profile_sensor_data
        )
        self.node.create_subscription(PerceptionResult, f"{self.namespace}/perception", self._on_result, 100)
        self.node.create_subscription(DiagnosticArray, "/diagnostics", self._on_diagnostics, 20)
        self.spinner = BackgroundSpinner(self.node)

    def _on_result(self, msg: PerceptionResult) -> None:
        stamp = msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec
        with self.lock:
            self.outputs.setdefault(stamp, (time.monotonic(), msg))

    def _on_diagnostics(self, msg: DiagnosticArray) -> None:
        for status in msg.status:
            if status.name.endswith(f"{self.namespace}/perception"):
                with self.lock:
                    self.diagnostics = {kv.key: kv.value for kv in status.values} | {"_message": status.message}
                    self.diagnostics_time = time.monotonic()

    def wait_for_node(self, compressed: bool, timeout: float) -> None:
        publisher = self.compressed_pub if compressed else self.image_pub
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                ready = self.diagnostics.get("_message", "").startswith("ready")
            if ready and publisher.get_subscription_count() > 0:
                return
            time.sleep(0.1)
        raise BagError(f"no perception node ready under {self.namespace} within {timeout:.0f} s")

    def counts(self, timeout: float = 10.0) -> dict[str, int]:
        """The node's counters from a /diagnostics message sent after this call."""
        asked = time.monotonic()
        while time.monotonic() - asked < timeout:
            with self.lock:
                if self.diagnostics_time > asked:
                    break
            time.sleep(0.05)
        with self.lock:
            return {k: int(self.diagnostics.get(k, 0)) for k in NODE_COUNTERS}

    def close(self) -> None:
        self.spinner.stop()


def run_live(
    frames: list[BagFrame], config: ModelConfig, labels: LabelSource | None, namespace: str, rate: float, timeout: float
) -> tuple[Replay, dict]:
    if not frames:
        raise BagError("the bag has no frames on that topic")
    collector = _Collector(namespace)
    try:
        compressed = frames[0].msg.__msgtype__ == COMPRESSED
        collector.wait_for_node(compressed, timeout)
        time.sleep(CONNECTION_SETTLE_S)
        before = collector.counts()
        published = _publish(collector, frames, compressed, rate)
        _settle(collector, published)
        after = collector.counts()
        replay = _score(frames, published, collector.outputs, config, labels)
    finally:
        collector.close()
    node = {k: after[k] - before[k] for k in after}
    return replay, {
        "outputs": len([f for f in frames if f.stamp_ns in collector.outputs]),
        "dropped": len(frames) - len([f for f in frames if f.stamp_ns in collector.outputs]),
        "rate_factor": rate,
        "node_diagnostics": node,
    }


def _publish(collector: _Collector, frames: list[BagFrame], compressed: bool, rate: float) -> dict[int, float]:
    publisher = collector.compressed_pub if compressed else collector.image_pub
    messages = [to_ros(frame) for frame in frames]
    published: dict[int, float] = {}
    start, first = time.monotonic(), frames[0].log_time_ns
    for frame, message in zip(frames, messages):
        delay = start + (frame.log_time_ns - first) / 1e9 / rate - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        published[frame.stamp_ns] = time.monotonic()
        publisher.publish(message)
    return published


def _settle(collector: _Collector, published: dict[int, float]) -> None:
    last_change, seen = time.monotonic(), -1
    while time.monotonic() - last_change < SETTLE_S:
        with collector.lock:
            count = len(collector.outputs)
        if count != seen:
            seen, last_change = count, time.monotonic()
        if all(stamp in collector.outputs for stamp in published):
            return
        time.sleep(0.05)


def _score(frames, published, outputs, config: ModelConfig, labels: LabelSource | None) -> Replay:
    replay = Replay(config, MetricAccumulator(tuple(config.seg_thresholds)))
    for frame in frames:
        record = {"index": frame.index, "stamp_ns": frame.stamp_ns, "name": frame.name, "output": False}
        if frame.stamp_ns in outputs:
            arrival, result = outputs[frame.stamp_ns]
            prediction = result_prediction(result, config.class_names)
            record.update(
                output=True,
                end_to_end_ms=(arrival - published[frame.stamp_ns]) * 1e3,
                inference_ms=result.inference_ms,
                detections=len(prediction.boxes),
            )
            image = decode(frame)
            if labels is not None:
                targets = labels(frame, image)
                record.update(score_published(replay.accumulator, prediction, targets, image.shape[:2], config))
            replay.overlay(image, prediction)
        replay.records.append(record)
    return replay
